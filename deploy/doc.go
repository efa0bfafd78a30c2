// Package deploy holds scoregate's deployment files: the Azure Container
// Instances container groups (aci/), the AKS Kustomize base, overlays and
// opt-in components (aks/), the Grafana dashboard and the Prometheus
// alerting rules. It has no Go code of its own; its tests decode every file
// strictly and check it against the command's flags (the pinned `serve
// --help`), the Dockerfile, the platforms' rules (kubelet, ACI, Kustomize)
// and the metrics scoregate exports. The same rules run on a directory of
// your own with `go test ./deploy/ -args -dir PATH` (rules_test.go).
package deploy
