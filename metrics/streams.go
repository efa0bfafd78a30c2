package metrics

// Stream causes of scoregate_streams_cut_total.
const (
	StreamCutClient  = "client"
	StreamCutIdle    = "idle"
	StreamCutBackend = "backend"
)

// StreamCut records an answer cut off after its header was written, with
// its cause (one of the StreamCut* constants).
func (m *Metrics) StreamCut(cause string) {
	if m != nil {
		m.streamsCut.WithLabelValues(cause).Inc()
	}
}
