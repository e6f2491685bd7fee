package token

import (
	"time"

	"github.com/ledger-secrets/ledger/engines"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// lookup is auth/token/lookup (token in the body or query; the caller's own when absent, as
// in Vault) and auth/token/lookup-self.
func (b *Backend) lookup(r *request, self bool) (*engines.Response, error) {
	tok := ""
	if !self {
		var err error
		if tok, err = engines.String(r.data, "token", ""); err != nil {
			return nil, err
		}
	}
	mac := r.Caller.TokenMAC
	if tok != "" {
		mac = b.macOf(tok)
	} else {
		tok = b.clientToken(r.ctx, r.Caller)
	}
	e, ok := b.live(mac, r.now)
	if !ok {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "bad token")
	}
	d := lookupData(e, tok, r.now)
	b.addIdentity(d, e.EntityID)
	return &engines.Response{Data: d}, nil
}

// lookupAccessor is auth/token/lookup-accessor: the same data with an empty id.
func (b *Backend) lookupAccessor(r *request) (*engines.Response, error) {
	e, err := b.byAccessor(r)
	if err != nil {
		return nil, err
	}
	d := lookupData(e, "", r.now)
	b.addIdentity(d, e.EntityID)
	return &engines.Response{Data: d}, nil
}

// byAccessor finds the live token named by the body's accessor, with Vault's messages.
func (b *Backend) byAccessor(r *request) (tokenview.Entry, error) {
	acc, err := engines.String(r.data, "accessor", "")
	if err != nil {
		return tokenview.Entry{}, err
	}
	if acc == "" {
		return tokenview.Entry{}, engines.BadRequest("missing accessor")
	}
	e, ok := b.view.ByAccessor(acc)
	if !ok || e.Expired(r.now) {
		return tokenview.Entry{}, engines.BadRequest("invalid accessor")
	}
	return e, nil
}

// renewable is Vault's lease check: an expiring, unexpired, renewable token.
func renewable(e tokenview.Entry, now time.Time) bool {
	return e.Expires() && !e.Expired(now) && e.Renewable
}

// lookupData is Vault's lookup answer. id is the token string when the caller supplied it.
func lookupData(e tokenview.Entry, id string, now time.Time) map[string]any {
	typ := e.Type
	if typ == "" {
		typ = "service"
	}
	d := map[string]any{
		"accessor":         e.Accessor,
		"creation_time":    e.CreationTime.Unix(),
		"creation_ttl":     seconds(e.CreationTTL),
		"display_name":     e.DisplayName,
		"entity_id":        e.EntityID,
		"expire_time":      nil,
		"explicit_max_ttl": seconds(e.ExplicitMaxTTL),
		"id":               id,
		"issue_time":       e.CreationTime,
		"meta":             copyMeta(e.Meta),
		"num_uses":         e.UsesLeft,
		"orphan":           e.ParentMAC == "",
		"path":             e.Path,
		"policies":         append([]string{}, e.Policies...),
		"renewable":        renewable(e, now),
		"ttl":              int64(0),
		"type":             typ,
	}
	if e.Expires() {
		d["expire_time"] = e.ExpireTime
		d["ttl"] = seconds(e.ExpireTime.Sub(now.Round(time.Second)))
	}
	if e.Period > 0 {
		d["period"] = seconds(e.Period)
	}
	if len(e.BoundCIDRs) > 0 {
		d["bound_cidrs"] = append([]string(nil), e.BoundCIDRs...)
	}
	if !e.LastRenewal.IsZero() {
		d["last_renewal_time"] = e.LastRenewal.Unix()
		d["last_renewal"] = e.LastRenewal
	}
	return d
}

// copyMeta copies the view's read-only map for a response; nil (JSON null) when empty.
func copyMeta(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// listAccessors is LIST auth/token/accessors (sudo).
func (b *Backend) listAccessors(*request) (*engines.Response, error) {
	return &engines.Response{Data: map[string]any{"keys": b.view.Accessors()}}, nil
}
