package metrics

import (
	dto "github.com/prometheus/client_model/go"
)

// HandshakeErrors returns scoregate_tls_handshake_errors_total for reason
// (one of the Handshake* constants): the count of failed handshakes since
// New, for summaries the process logs itself. The collectors are the only
// count; nothing keeps a second one. A nil Metrics counts nothing.
func (m *Metrics) HandshakeErrors(reason string) float64 {
	if m == nil {
		return 0
	}
	var out dto.Metric
	if err := m.handshakeErrors.WithLabelValues(reason).Write(&out); err != nil {
		return 0
	}
	return out.GetCounter().GetValue()
}

// StreamsCut returns scoregate_streams_cut_total for cause.
func (m *Metrics) StreamsCut(cause string) float64 {
	if m == nil {
		return 0
	}
	var out dto.Metric
	if err := m.streamsCut.WithLabelValues(cause).Write(&out); err != nil {
		return 0
	}
	return out.GetCounter().GetValue()
}
