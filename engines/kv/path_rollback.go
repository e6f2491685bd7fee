package kv

import (
	"context"
	"encoding/json"
	"strconv"

	"github.com/ledger-secrets/ledger/engines"
)

// rollback/:path — Ledger's own endpoint (Vault's CLI rolls back client-side). It writes the
// data of version N as a new version, on the server: the value never leaves it, so a caller
// needs update on <mount>/rollback/<path> and no read on <mount>/data/<path> (vault#12448).
// The new version is written with check-and-set against the current version — the "cas" field
// when given, else the version current at decision time — so a concurrent write is never
// silently overwritten.

func (b *Backend) handleRollback(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, unsupported()
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	n, err := engines.Int(req.Data, "version", 0)
	if err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, engines.BadRequest("field \"version\": the version to roll back to is required, a number of 1 or more")
	}
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok || s.CurrentVersion == 0 {
		return nil, engines.Errorf(engines.ErrNotFound, "no secret at %q", path)
	}
	want := uint64(n)
	v, ok := s.Versions[want]
	switch {
	case !ok && want > s.CurrentVersion:
		return nil, engines.BadRequest("cannot roll back to version %d: it does not exist (the current version is %d)", want, s.CurrentVersion)
	case !ok:
		return nil, engines.BadRequest("cannot roll back to version %d: it no longer exists (max_versions removed it; the oldest version kept is %d)", want, s.OldestVersion)
	case v.Destroyed:
		return nil, engines.BadRequest("cannot roll back to version %d: it has been destroyed", want)
	case v.Deleted(req.Now):
		return nil, engines.BadRequest("cannot roll back to version %d: it has been deleted (undelete it first)", want)
	case !v.HasValue():
		return nil, engines.BadRequest("cannot roll back to version %d: it was imported without its value (it was deleted at the source)", want)
	}
	cas := strconv.FormatUint(s.CurrentVersion, 10)
	if engines.Has(req.Data, "cas") && req.Data["cas"] != nil {
		c, err := engines.Int(req.Data, "cas", 0)
		if err != nil {
			return nil, engines.BadRequest("error parsing check-and-set parameter")
		}
		cas = strconv.Itoa(c)
	}
	value, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, want))
	if err != nil {
		return nil, err
	}
	// The copy goes through the ordinary write, so it is sealed under a fresh data key, trimmed
	// by max_versions and scheduled by delete_version_after exactly like any other version.
	write := *req
	write.Data = map[string]any{"data": value, "options": map[string]any{"cas": json.Number(cas)}}
	resp, err := b.writeData(ctx, &write, path, false)
	if err != nil {
		return nil, err
	}
	resp.Warnings = ignored(req.Data, "version", "cas")
	return resp, nil
}
