package metrics

import (
	"crypto/tls"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets. Scoring can be slow (a large model on CPU takes seconds, and
// Azure ML allows 60 s by default), so request histograms reach minutes;
// the proxy's own overhead is compared with Azure ML's front end (3 ms on
// average, 15 ms at p99), so its buckets are finer.
var (
	requestBuckets  = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	overheadBuckets = []float64{.0001, .00025, .0005, .001, .002, .003, .005, .01, .015, .025, .05, .1, .25, 1}
)

// Label values of the fixed sets. Labels never carry paths, hosts or
// client addresses.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// Metrics holds scoregate's collectors. Create it with New. Its methods are
// safe for concurrent use, and a nil *Metrics records nothing, so that
// packages can be used and tested without a registry.
type Metrics struct {
	requests         *prometheus.CounterVec
	requestDuration  prometheus.Histogram
	upstreamDuration prometheus.Histogram
	overhead         prometheus.Histogram
	inFlight         prometheus.Gauge
	connsOpen        prometheus.Gauge
	connsRefused     *prometheus.CounterVec
	handshakes       *prometheus.CounterVec
	handshakeErrors  *prometheus.CounterVec
	certExpiry       *prometheus.GaugeVec
	certReloads      *prometheus.CounterVec
	certLastReloadOK prometheus.Gauge
	authKeyReloads   *prometheus.CounterVec
	upstreamErrors   *prometheus.CounterVec
	authFailures     prometheus.Counter
	backendReady     prometheus.Gauge
	acmeOrders       prometheus.Counter
	acmeRenewals     prometheus.Counter
	acmeFailures     prometheus.Counter
	acmeWaitingDNS   prometheus.Gauge
	responseBuffer   prometheus.Gauge
	responseBufFull  prometheus.Counter
	streamsCut       *prometheus.CounterVec

	// The replica pool's (pool.go), each labelled by service.
	replicas        *prometheus.GaugeVec
	replicasHealthy *prometheus.GaugeVec
	queueLength     *prometheus.GaugeVec
	queueWait       *prometheus.HistogramVec
	refused         *prometheus.CounterVec
	outstanding     *prometheus.GaugeVec // and replica
	ejections       *prometheus.CounterVec
}

// New creates the collectors and registers them, with the Go runtime and
// process collectors and scoregate_build_info, on reg. It panics if reg
// already holds any of them (a programming error, as with
// prometheus.MustRegister); use a fresh registry per Metrics.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_requests_total",
			Help: "HTTP requests answered on the TLS listener, by status code and method.",
		}, []string{"code", "method"}),
		requestDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scoregate_request_duration_seconds",
			Help:    "Time from the request's arrival to the end of the response.",
			Buckets: requestBuckets,
		}),
		upstreamDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scoregate_upstream_duration_seconds",
			Help:    "Time the backend took to send its response headers.",
			Buckets: requestBuckets,
		}),
		overhead: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "scoregate_proxy_overhead_seconds",
			Help:    "Time a forwarded request spent in scoregate itself: from arrival to hand-off to the backend, less waiting for the client's body, plus from the backend's response headers (or failure; for an answer read whole before it is sent, its last byte) to the client's response header. Body transfers are not counted.",
			Buckets: overheadBuckets,
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_requests_in_flight",
			Help: "Requests being served.",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_connections_open",
			Help: "Client connections open on the TLS listener.",
		}),
		connsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_connections_refused_total",
			Help: "Client connections closed at accept on the TLS listener, by reason: per_ip_limit (the client address had --max-connections-per-ip open).",
		}, []string{"reason"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_tls_handshakes_total",
			Help: "TLS handshakes, by result, TLS version and whether the session was resumed.",
		}, []string{"result", "version", "resumed"}),
		handshakeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_tls_handshake_errors_total",
			Help: "Failed TLS handshakes, by reason.",
		}, []string{"reason"}),
		certExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scoregate_certificate_expiry_timestamp_seconds",
			Help: "NotAfter of the certificate being served, as a Unix time, by source (file or acme).",
		}, []string{"source"}),
		certReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_certificate_reloads_total",
			Help: "Certificate reloads: ok published a changed pair, error kept the old one.",
		}, []string{"result"}),
		certLastReloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_certificate_last_reload_success_timestamp_seconds",
			Help: "When a certificate was last loaded successfully (at startup or by a reload), as a Unix time.",
		}),
		authKeyReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_auth_key_reloads_total",
			Help: "Auth key file reloads: ok applied new keys, error kept the old ones.",
		}, []string{"result"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_upstream_errors_total",
			Help: "Requests the backend failed, by reason.",
		}, []string{"reason"}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scoregate_auth_failures_total",
			Help: "Requests refused with 401 for a missing or wrong bearer key.",
		}),
		backendReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_backend_ready",
			Help: "1 if the backend answered its last health check (GET /) with success, else 0.",
		}),
		acmeOrders: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scoregate_acme_orders_total",
			Help: "ACME certificates obtained for the first time by this instance.",
		}),
		acmeRenewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scoregate_acme_renewals_total",
			Help: "ACME certificates renewed by this instance.",
		}),
		acmeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scoregate_acme_failures_total",
			Help: "Failed ACME obtain or renew attempts (retried with backoff).",
		}),
		acmeWaitingDNS: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_acme_waiting_for_dns",
			Help: "1 while no ACME certificate is ordered because the name does not resolve yet, else 0.",
		}),
		responseBuffer: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scoregate_response_buffer_bytes",
			Help: "Memory held by backend answers read whole before they are written to their clients, in 16 KiB blocks; never above --buffer-total-bytes.",
		}),
		responseBufFull: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scoregate_response_buffer_full_total",
			Help: "Backend answers small enough to be read whole that streamed instead, holding their replica slot, because --buffer-total-bytes was in use.",
		}),
		streamsCut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_streams_cut_total",
			Help: "Answers cut off after their header reached the client, by cause: client (it went away; its backend request is ended at once, so the model can stop generating), idle (the backend sent nothing for --stream-idle-timeout) or backend (its answer broke off).",
		}, []string{"cause"}),
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scoregate_replicas",
			Help: "Backend replicas of the service, as last resolved.",
		}, []string{"service"}),
		replicasHealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scoregate_replicas_healthy",
			Help: "Backend replicas of the service in rotation, that is not ejected after consecutive connection failures.",
		}, []string{"service"}),
		queueLength: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scoregate_queue_length",
			Help: "Requests waiting for a replica slot because every replica is at its concurrency limit (Azure ML's max_concurrent_requests_per_instance).",
		}, []string{"service"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "scoregate_queue_wait_seconds",
			Help:    "Time admitted requests waited for a replica slot, 0 for those admitted at once; refused requests are not observed. The wait is bounded like Azure ML's max_queue_wait_ms.",
			Buckets: queueWaitBuckets,
		}, []string{"service"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_admissions_refused_total",
			Help: "Requests answered 503 with Retry-After without reaching a replica, by reason: queue_full, queue_timeout (waited the maximum, Azure ML's max_queue_wait_ms) or no_replicas.",
		}, []string{"service", "reason"}),
		outstanding: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scoregate_replica_outstanding_requests",
			Help: "Requests sent to the replica and not yet finished; the balancer picks the replica with the fewest.",
		}, []string{"service", "replica"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scoregate_replica_ejections_total",
			Help: "Replicas taken out of rotation after consecutive connection failures.",
		}, []string{"service"}),
	}
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "scoregate_build_info",
		Help: "Always 1; the labels give scoregate's version and the Go version it was built with.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(Version(), runtime.Version()).Set(1)

	reg.MustRegister(
		m.requests, m.requestDuration, m.upstreamDuration, m.overhead, m.inFlight, m.connsOpen, m.connsRefused,
		m.handshakes, m.handshakeErrors, m.certExpiry, m.certReloads, m.certLastReloadOK,
		m.authKeyReloads, m.upstreamErrors, m.authFailures, m.backendReady,
		m.acmeOrders, m.acmeRenewals, m.acmeFailures, m.acmeWaitingDNS, buildInfo,
		m.responseBuffer, m.responseBufFull, m.streamsCut,
		m.replicas, m.replicasHealthy, m.queueLength, m.queueWait, m.refused, m.outstanding, m.ejections,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, c := range []string{StreamCutClient, StreamCutIdle, StreamCutBackend} {
		m.streamsCut.WithLabelValues(c)
	}
	// Handshake errors by SNI are known up front; the others appear as
	// they happen.
	for _, r := range []string{HandshakeUnrecognizedName, HandshakeMissingSNI} {
		m.handshakeErrors.WithLabelValues(r)
	}
	for _, r := range []string{ResultOK, ResultError} {
		m.certReloads.WithLabelValues(r)
	}
	m.connsRefused.WithLabelValues(ConnRefusedPerIPLimit)
	return m
}

// Version is scoregate's module version from the build info, or "(devel)".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" {
		return "(devel)"
	}
	return bi.Main.Version
}

// Handler serves the registry's metrics in the Prometheus text format.
func Handler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// methodLabel maps a request method to a small fixed set.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions, http.MethodPatch:
		return method
	}
	return "OTHER"
}

// codeLabels are the status codes' label values, built once.
var codeLabels = func() (s [600]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

// Request records one answered request: its status, method, total
// duration and, when it reached the backend, the time the backend took
// to send its headers (upstream < 0 when it did not). The proxy overhead
// of a forwarded request is recorded apart, by Overhead.
func (m *Metrics) Request(code int, method string, total, upstream time.Duration) {
	if m == nil {
		return
	}
	c := "other"
	if code >= 100 && code < len(codeLabels) {
		c = codeLabels[code]
	}
	m.requests.WithLabelValues(c, methodLabel(method)).Inc()
	m.requestDuration.Observe(total.Seconds())
	if upstream >= 0 {
		m.upstreamDuration.Observe(upstream.Seconds())
	}
}

// Overhead records the time a forwarded request spent in scoregate itself,
// scoregate_proxy_overhead_seconds: the work before the request is handed
// to the backend client and the work between the end of the wait for the
// backend and the response header being handed to the client's connection.
// The caller leaves out every wait on the client (a request body that is
// slow to arrive, a response read slowly) and on the backend, so that the
// metric answers "what does scoregate add", not "how fast are the client
// and the network". A negative d counts as 0.
func (m *Metrics) Overhead(d time.Duration) {
	if m == nil {
		return
	}
	m.overhead.Observe(max(d, 0).Seconds())
}

// InFlight adds delta to the requests being served.
func (m *Metrics) InFlight(delta float64) {
	if m != nil {
		m.inFlight.Add(delta)
	}
}

// ConnState is an http.Server ConnState hook that keeps
// scoregate_connections_open.
func (m *Metrics) ConnState(_ net.Conn, state http.ConnState) {
	if m == nil {
		return
	}
	switch state {
	case http.StateNew:
		m.connsOpen.Inc()
	case http.StateClosed, http.StateHijacked:
		m.connsOpen.Dec()
	}
}

// ConnRefusedPerIPLimit is ConnRefused's reason for a connection from an
// address that already has the per-address maximum open.
const ConnRefusedPerIPLimit = "per_ip_limit"

// ConnRefused records a client connection closed at accept; reason is
// ConnRefusedPerIPLimit.
func (m *Metrics) ConnRefused(reason string) {
	if m != nil {
		m.connsRefused.WithLabelValues(reason).Inc()
	}
}

// Handshake reasons for HandshakeError.
const (
	HandshakeUnrecognizedName = "unrecognized_name"
	HandshakeMissingSNI       = "missing_sni"
	HandshakeProtocolVersion  = "protocol_version"
	HandshakeNoSharedCipher   = "no_shared_cipher"
	HandshakeNotTLS           = "not_tls"
	HandshakeBadRecord        = "bad_record"
	HandshakeTimeout          = "timeout"
	HandshakeEOF              = "eof"
	HandshakeReset            = "reset"
	HandshakeBadCertificate   = "bad_certificate"
	HandshakeNoCertificate    = "no_certificate" // ACME: none obtained yet
	HandshakeOther            = "other"
)

// Handshake reasons of mutual TLS: the client sent no certificate although
// one is required, or one that does not verify against the client CAs.
const (
	HandshakeClientCertRequired = "client_certificate_required"
	HandshakeBadClientCert      = "bad_client_certificate"
)

// TLSVersion names a TLS version as the metrics and the access log show
// it: "1.3", "1.2" (the only versions scoregate accepts), else "other".
func TLSVersion(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return "other"
}

// HandshakeOK records a completed handshake.
func (m *Metrics) HandshakeOK(version string, resumed bool) {
	if m != nil {
		m.handshakes.WithLabelValues(ResultOK, version, strconv.FormatBool(resumed)).Inc()
	}
}

// HandshakeError records a failed handshake; reason is one of the
// Handshake* constants.
func (m *Metrics) HandshakeError(reason string) {
	if m == nil {
		return
	}
	m.handshakes.WithLabelValues(ResultError, "", "false").Inc()
	m.handshakeErrors.WithLabelValues(reason).Inc()
}

// CertLoaded records a certificate published for serving from source
// ("file" or "acme"), at startup or by a reload.
func (m *Metrics) CertLoaded(source string, notAfter time.Time, reload bool) {
	if m == nil {
		return
	}
	m.certExpiry.WithLabelValues(source).Set(float64(notAfter.Unix()))
	m.certLastReloadOK.SetToCurrentTime()
	if reload {
		m.certReloads.WithLabelValues(ResultOK).Inc()
	}
}

// CertReloadFailed records a refused certificate reload.
func (m *Metrics) CertReloadFailed() {
	if m != nil {
		m.certReloads.WithLabelValues(ResultError).Inc()
	}
}

// AuthKeyReload records an auth key file reload's result.
func (m *Metrics) AuthKeyReload(ok bool) {
	if m == nil {
		return
	}
	r := ResultOK
	if !ok {
		r = ResultError
	}
	m.authKeyReloads.WithLabelValues(r).Inc()
}

// Upstream error reasons for UpstreamError.
const (
	UpstreamRefused     = "refused"
	UpstreamDialTimeout = "dial_timeout"
	UpstreamTimeout     = "timeout"
	UpstreamReset       = "reset"
	UpstreamOther       = "other"
)

// UpstreamError records a request the backend failed; reason is one of
// the Upstream* constants.
func (m *Metrics) UpstreamError(reason string) {
	if m != nil {
		m.upstreamErrors.WithLabelValues(reason).Inc()
	}
}

// AuthFailure records a request refused for its bearer key.
func (m *Metrics) AuthFailure() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// BackendReady records the result of a backend health check.
func (m *Metrics) BackendReady(ready bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ready {
		v = 1
	}
	m.backendReady.Set(v)
}

// ACMEOrder records an ACME certificate obtained for the first time.
func (m *Metrics) ACMEOrder() {
	if m != nil {
		m.acmeOrders.Inc()
	}
}

// ACMERenewal records a renewed ACME certificate.
func (m *Metrics) ACMERenewal() {
	if m != nil {
		m.acmeRenewals.Inc()
	}
}

// ACMEFailure records a failed ACME obtain or renew attempt.
func (m *Metrics) ACMEFailure() {
	if m != nil {
		m.acmeFailures.Inc()
	}
}

// ACMEWaitingForDNS records whether the ACME order waits for the name to
// resolve (scoregate_acme_waiting_for_dns).
func (m *Metrics) ACMEWaitingForDNS(waiting bool) {
	if m == nil {
		return
	}
	v := 0.0
	if waiting {
		v = 1
	}
	m.acmeWaitingDNS.Set(v)
}

// ResponseBuffer adds delta bytes to the memory held by buffered backend
// answers, scoregate_response_buffer_bytes.
func (m *Metrics) ResponseBuffer(delta int64) {
	if m != nil {
		m.responseBuffer.Add(float64(delta))
	}
}

// ResponseBufferFull records an answer that streamed because the buffers'
// total was in use, scoregate_response_buffer_full_total.
func (m *Metrics) ResponseBufferFull() {
	if m != nil {
		m.responseBufFull.Inc()
	}
}
