package token

import (
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// revokePath is auth/token/revoke (token in the body), revoke-self and revoke-accessor: the
// token and its whole subtree. Revoking a token the view does not hold succeeds with nothing
// to do, as in Vault; a token past its expiry but not yet reaped is revoked like a live one.
func (b *Backend) revokePath(r *request, path string) (*engines.Response, error) {
	var mac string
	switch path {
	case "revoke":
		tok, err := engines.String(r.data, "token", "")
		if err != nil {
			return nil, err
		}
		if tok == "" {
			return nil, engines.BadRequest("missing token ID")
		}
		mac = b.macOf(tok)
	case "revoke-self":
		mac = r.Caller.TokenMAC
	case "revoke-accessor":
		acc, err := engines.String(r.data, "accessor", "")
		if err != nil {
			return nil, err
		}
		if acc == "" {
			return nil, engines.BadRequest("missing accessor")
		}
		e, ok := b.view.ByAccessor(acc)
		if !ok {
			return &engines.Response{Warnings: []string{"No token found with this accessor"}}, nil
		}
		mac = e.MAC
	}
	return &engines.Response{Events: stamp(r, b.RevokeTree(mac, ReasonRevoked))}, nil
}

// revokeOrphan is auth/token/revoke-orphan: the token alone; its children become orphans.
func (b *Backend) revokeOrphan(r *request) (*engines.Response, error) {
	tok, err := engines.String(r.data, "token", "")
	if err != nil {
		return nil, err
	}
	if tok == "" {
		return nil, engines.BadRequest("missing token ID")
	}
	if !b.sudo(r.Caller, b.mountPath(r.Request)+r.Path) {
		return nil, engines.BadRequest("root or sudo privileges required to revoke and orphan")
	}
	e, ok := b.live(b.macOf(tok), r.now)
	if !ok {
		return nil, engines.BadRequest("token to revoke not found")
	}
	ev := RevokedEvent(e.MAC, ReasonRevoked, true)
	return &engines.Response{Events: stamp(r, []ledger.Event{ev})}, nil
}
