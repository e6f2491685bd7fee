// Package deploycheck holds the tests that keep the repository's top-level deploy/ tree true:
// every Kubernetes manifest decodes strictly into the real k8s.io/api types and its parts fit
// together (selectors, RBAC, probes, security context), the NATS Helm values parse, every
// shipped .hcl loads with the server's own config loader without a warning, and the systemd
// unit uses only directives systemd knows. It lives under cmd/ledger to import that loader.
package deploycheck
