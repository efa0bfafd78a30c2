// Package deploy holds scoregate's deployment files: the ACI container
// group and AKS DaemonSet manifests, the Grafana dashboard and the
// Prometheus alerting rules. It has no Go code of its own; its tests decode
// the files and check them against the metrics scoregate exports.
package deploy
