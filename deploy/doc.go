// Package deploy holds scoregate's deployment files: the Azure Container
// Instances container groups (aci/), the AKS Kustomize base and overlays
// (aks/), the Grafana dashboard and the Prometheus alerting rules. It has
// no Go code of its own; its tests decode every file strictly and check
// it against the command's flags (the pinned `serve --help`), the
// Dockerfile, the platforms' rules (kubelet, ACI, Kustomize) and the
// metrics scoregate exports.
package deploy
