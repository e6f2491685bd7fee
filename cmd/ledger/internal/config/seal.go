package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// decodeSeals reads the seal "TYPE" blocks. At most one may be enabled and at most one
// disabled (the old seal of a migration, as Vault documents it).
func (d *decoder) decodeSeals(blocks []*hcl.Block) []autoseal.Config {
	var out []autoseal.Config
	var enabled, disabled *hcl.Block
	for _, b := range blocks {
		typ := b.Labels[0]
		known := autoseal.Known(typ)
		switch typ {
		case autoseal.TypeAWSKMS, autoseal.TypeTransit, autoseal.TypePKCS11:
		case autoseal.TypeShamir:
			d.errorf(b.DefRange, `seal "shamir" needs no stanza: leave the seal stanzas out for the Shamir seal (to migrate to it, keep only the old seal's stanza with disabled = "true")`)
			continue
		default:
			d.errorf(b.DefRange, "seal type %q is not one of awskms, transit, pkcs11", typ)
			continue
		}
		c := d.content(b.Body, fmt.Sprintf("seal %q", typ), known, nil)
		sc := autoseal.Config{Type: typ, Params: map[string]string{}, Line: b.DefRange.Start.Line}
		for name, a := range c.Attributes {
			if name == "disabled" {
				if v, ok := d.boolean(a); ok {
					sc.Disabled = v
				}
				continue
			}
			if v, ok := d.scalar(a); ok {
				sc.Params[name] = v
			}
		}
		slot := &enabled
		if sc.Disabled {
			slot = &disabled
		}
		if *slot != nil {
			what := "enabled"
			if sc.Disabled {
				what = "disabled"
			}
			d.errorf(b.DefRange, "two seals are %s (the other at line %d): one seal is in force; to migrate, mark the old one disabled = \"true\" and keep the new one enabled", what, (*slot).DefRange.Start.Line)
			continue
		}
		*slot = b
		out = append(out, sc)
	}
	if enabled != nil && disabled != nil && enabled.Labels[0] == disabled.Labels[0] {
		d.errorf(enabled.DefRange, "both seal stanzas are %q: migrating between two keys of one seal type is not supported; migrate through another seal", enabled.Labels[0])
	}
	return out
}

// scalar reads a string, number or bool attribute as a string, as Vault's seal settings are.
func (d *decoder) scalar(a *hcl.Attribute) (string, bool) {
	v, ok := d.value(a)
	if !ok {
		return "", false
	}
	switch v.Type() {
	case cty.String:
		return v.AsString(), true
	case cty.Bool:
		return fmt.Sprint(v.True()), true
	case cty.Number:
		return v.AsBigFloat().Text('f', -1), true
	}
	d.errorf(a.Range, "%s must be a string, got %s", a.Name, v.Type().FriendlyName())
	return "", false
}
