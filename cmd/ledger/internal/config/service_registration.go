package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// ServiceRegistration is Vault's service_registration "kubernetes" block: the server labels
// its own pod with its state. Namespace and PodName may be left empty here and come from
// the environment (LEDGER_K8S_NAMESPACE, LEDGER_K8S_POD_NAME, or Vault's VAULT_K8S_*), which
// is how the downward API fills them; the server resolves that at startup.
type ServiceRegistration struct {
	Type      string // always "kubernetes"
	Namespace string
	PodName   string
}

func (d *decoder) decodeServiceRegistrations(blocks []*hcl.Block) *ServiceRegistration {
	var out *ServiceRegistration
	for _, b := range blocks {
		if out != nil {
			d.errorf(b.DefRange, "only one service_registration block is allowed; the first is at line %d", blocks[0].DefRange.Start.Line)
			continue
		}
		typ := b.Labels[0]
		if typ != "kubernetes" {
			// Vault's consul registration: a Vault config still loads, and the operator is
			// told that nothing registers the node there.
			d.warnf(b.DefRange, `service_registration %q is not supported; only "kubernetes" is (ignored)`, typ)
			continue
		}
		where := fmt.Sprintf("service_registration %q", typ)
		c := d.content(b.Body, where, []string{"namespace", "pod_name"}, nil)
		sr := &ServiceRegistration{Type: typ}
		if a, ok := c.Attributes["namespace"]; ok {
			sr.Namespace, _ = d.nonEmptyStr(a)
		}
		if a, ok := c.Attributes["pod_name"]; ok {
			sr.PodName, _ = d.nonEmptyStr(a)
		}
		out = sr
	}
	return out
}
