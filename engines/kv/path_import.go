package kv

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// import/:path — Ledger's own endpoint, used by `ledger operator import` to copy one version of
// a KV v2 secret from another server with its history intact: the version number, the source's
// created_time and deletion_time, and whether it was destroyed. It needs sudo (PathsSpecial), so
// an ordinary client cannot backdate a version; the event still carries the real time it was
// imported and the importing token's accessor, so the log stays honest about when and who.
//
// Versions are imported in order: "version" must be after the current one, which is what makes
// a re-run or a resumed run unable to write a version twice. A destroyed version is written
// without a value and destroyed in the same append, so version numbers line up with the
// source's. A version deleted at the source cannot be read there (Vault answers 404), so it
// may come without "data": it is recorded as deleted and never has a value here.

// importFields are the fields import/:path reads.
var importFields = []string{"version", "created_time", "deletion_time", "destroyed", "oldest_version", "data"}

func (b *Backend) handleImport(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
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
	if n < 1 {
		return nil, engines.BadRequest("field \"version\": the source's version number is required, 1 or more")
	}
	created, err := importTime(req.Data, "created_time")
	if err != nil {
		return nil, err
	}
	if created.IsZero() {
		return nil, engines.BadRequest("field \"created_time\": the source's created_time is required (RFC 3339)")
	}
	if created.After(req.Now) {
		return nil, engines.BadRequest("field \"created_time\": %s is in the future (the server's clock reads %s)", created.Format(time.RFC3339Nano), req.Now.UTC().Format(time.RFC3339Nano))
	}
	deletion, err := importTime(req.Data, "deletion_time")
	if err != nil {
		return nil, err
	}
	destroyed, err := engines.Bool(req.Data, "destroyed", false)
	if err != nil {
		return nil, err
	}
	oldest, err := engines.Int(req.Data, "oldest_version", 0)
	if err != nil {
		return nil, err
	}
	if oldest < 0 || oldest > n {
		return nil, engines.BadRequest("field \"oldest_version\": %d is not between 0 and the version (%d)", oldest, n)
	}
	var value map[string]any
	if engines.Has(req.Data, "data") && req.Data["data"] != nil {
		if destroyed {
			return nil, engines.BadRequest("field \"data\": a destroyed version is imported without its value")
		}
		if value, err = dataArg(req.Data); err != nil {
			return nil, err
		}
	} else if !destroyed && deletion.IsZero() {
		return nil, engines.BadRequest("no data provided: only a destroyed or deleted version may be imported without its value")
	}

	s, _ := b.view.Secret(b.mount.UUID, path)
	v := uint64(n)
	if v <= s.CurrentVersion {
		return nil, engines.BadRequest("version %d of %q is already here (the current version is %d): versions are imported once, in order", v, path, s.CurrentVersion)
	}
	p := kvview.VersionWrittenPayload{
		Mount: b.mount.UUID, Path: path, Version: v, Created: created, Deletion: deletion,
		Oldest: max(s.OldestVersion, uint64(oldest)), Imported: true,
	}
	if value != nil {
		plaintext, err := json.Marshal(value)
		if err != nil {
			return nil, engines.BadRequest("field \"data\": cannot be encoded as JSON")
		}
		defer clear(plaintext)
		if p.KeyID, p.Sealed, err = b.seal(ctx, plaintext, valueAD(b.mount.UUID, path, v)); err != nil {
			return nil, err
		}
	}
	written, err := b.event(req, kvview.VersionWritten, b.subject(path), p)
	if err != nil {
		return nil, err
	}
	resp := respond(versionMetadata(s, v, kvview.Version{Created: created, Deletion: deletion, Destroyed: destroyed}), written)
	if destroyed {
		gone, err := b.event(req, kvview.VersionsDestroyed, b.subject(path), kvview.VersionsPayload{
			Mount: b.mount.UUID, Path: path, Versions: []uint64{v}, Time: req.Now.UTC(),
		})
		if err != nil {
			return nil, err
		}
		resp.Events = append(resp.Events, gone)
	}
	resp.Warnings = ignored(req.Data, importFields...)
	return resp, nil
}

// importTime reads an RFC 3339 time; absent, null or "" is the zero time.
func importTime(data map[string]any, field string) (time.Time, error) {
	s, err := engines.String(data, field, "")
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, engines.BadRequest("field %q: %q is not an RFC 3339 time", field, s)
	}
	return t.UTC(), nil
}

// Unauthenticated implements engines.PathsSpecial: every KV path needs a token.
func (b *Backend) Unauthenticated() []string { return nil }

// Sudo implements engines.PathsSpecial: only import/ (KV v2), which sets times a client must
// not be able to forge.
func (b *Backend) Sudo() []string {
	if b.v2 {
		return []string{"import/*"}
	}
	return nil
}

var _ engines.PathsSpecial = (*Backend)(nil)
