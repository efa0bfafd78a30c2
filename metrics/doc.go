// Package metrics owns scoregate's operational endpoints: /healthz and
// /readyz on the --metrics-listen address (and, with the observability work,
// the scoregate_* Prometheus collectors and /metrics).
//
// It imports only the standard library and the Prometheus client, so every
// other package may depend on it.
package metrics
