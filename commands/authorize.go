package commands

import (
	"context"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// mayWrite is the check made before a body is decoded: could the token perform this kind of
// operation on path with some body? It looks only at capabilities, never at parameters, so it
// refuses nothing the full check (authorize) would allow.
func mayWrite(a *acl.ACL, op engines.Operation, path string) bool {
	if a.IsRoot() {
		return true
	}
	var need []string
	switch op {
	case engines.OpUpdate, engines.OpCreate:
		need = []string{"create", "update"}
	case engines.OpPatch:
		need = []string{"patch"}
	default:
		return true // reads, lists and deletes carry no body; the full check decides
	}
	for _, c := range a.Capabilities(path) {
		for _, n := range need {
			if c == n {
				return true
			}
		}
	}
	return false
}

// decodeBody fills the request's data from its body, once.
func decodeBody(r *Request, req *engines.Request) error {
	if r.Body == nil {
		return nil
	}
	body := r.Body
	r.Body = nil
	data, err := body()
	if err != nil {
		return err
	}
	if data == nil {
		data = map[string]any{}
	}
	r.Data, req.Data = data, data
	return nil
}

// authorize decides whether the token may perform the request: it tells create from update by
// the backend's existence check and checks the capability, the parameters and sudo. The caller
// holds the aggregate's lock for writes, so the answer cannot go stale before the engine acts.
func (c *Core) authorize(ctx context.Context, st *unsealed, rt route, special engines.PathsSpecial, req *engines.Request, entry tokenview.Entry, r *Request) error {
	if req.Op == engines.OpUpdate {
		if ec, ok := rt.backend.(engines.ExistenceChecker); ok {
			exists, err := ec.Exists(ctx, req)
			if err != nil {
				return err
			}
			if !exists {
				req.Op = engines.OpCreate
			}
		}
	}
	a := c.aclForToken(st, entry)
	d := a.Allowed(aclOp(req.Op), r.Path, req.Data)
	if !d.Allowed {
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	if err := checkWrapBounds(d, r.wrapTTL); err != nil {
		return err
	}
	if special != nil && matchAny(special.Sudo(), rt.rel) && !d.Sudo && !a.IsRoot() {
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	return nil
}
