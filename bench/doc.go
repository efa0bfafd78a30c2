// Package bench holds scoregate's load harness and the synthetic scoring
// backend it measures against.
//
// The harness ([Run]) drives one [Scenario] against a URL: new connections
// with full or resumed TLS handshakes, keep-alive HTTP/1.1, or HTTP/2 over a
// chosen number of connections and streams, either closed-loop (a fixed
// number of workers) or open-loop (a fixed request rate, latency measured
// from each request's scheduled time). A [Result] holds the throughput, the
// latency percentiles from an HDR histogram and the errors by kind; it
// prints as a table, encodes as JSON and plots as a self-contained HTML
// report ([WriteHTML]). The package depends on the standard library and
// the HDR histogram only: it never imports the proxy, so it measures any
// HTTPS endpoint the same way.
//
// The backend answers the way an Azure Machine Learning inference server
// does: POST /score, GET / ("Healthy") and GET /swagger.json. It is also the
// backend that `scoregate serve --dev` starts when no --backend is given, so
// the development setup and the benchmarks exercise the same thing.
package bench
