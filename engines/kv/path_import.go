package kv

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
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

// importFields are the fields import/:path reads: one version's fields, or "versions", a list
// of such objects imported in order in one append (a secret's whole history in one request).
var importFields = []string{"version", "created_time", "deletion_time", "destroyed", "oldest_version", "data", "versions"}

// importedVersion is one version to import, as decoded and checked.
type importedVersion struct {
	n         uint64
	created   time.Time
	deletion  time.Time
	destroyed bool
	value     map[string]any
}

func (b *Backend) handleImport(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, unsupported()
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	oldest, err := engines.Int(req.Data, "oldest_version", 0)
	if err != nil {
		return nil, err
	}
	specs := []map[string]any{req.Data}
	if engines.Has(req.Data, "versions") && req.Data["versions"] != nil {
		list, ok := req.Data["versions"].([]any)
		if !ok || len(list) == 0 {
			return nil, engines.BadRequest("field \"versions\": expected a list of versions to import, oldest first")
		}
		specs = specs[:0]
		for i, raw := range list {
			m, ok := raw.(map[string]any)
			if !ok {
				return nil, engines.BadRequest("field \"versions\": item %d is not an object", i)
			}
			specs = append(specs, m)
		}
	}
	s, _ := b.view.Secret(b.mount.UUID, path)
	after := s.CurrentVersion
	versions := make([]importedVersion, 0, len(specs))
	for _, spec := range specs {
		v, err := parseImported(spec, req.Now)
		if err != nil {
			return nil, err
		}
		if v.n <= after {
			return nil, engines.BadRequest("version %d of %q is already here (the current version is %d): versions are imported once, in order", v.n, path, after)
		}
		after = v.n
		versions = append(versions, v)
	}
	if oldest < 0 || uint64(oldest) > versions[0].n {
		return nil, engines.BadRequest("field \"oldest_version\": %d is not between 0 and the first version imported (%d)", oldest, versions[0].n)
	}
	resp := &engines.Response{}
	for _, v := range versions {
		p := kvview.VersionWrittenPayload{
			Mount: b.mount.UUID, Path: path, Version: v.n, Created: v.created, Deletion: v.deletion,
			Oldest: max(s.OldestVersion, uint64(oldest)), Imported: true,
		}
		if v.value != nil {
			plaintext, err := json.Marshal(v.value)
			if err != nil {
				return nil, engines.BadRequest("field \"data\": cannot be encoded as JSON")
			}
			p.KeyID, p.Sealed, err = b.seal(ctx, plaintext, valueAD(b.mount.UUID, path, v.n))
			clear(plaintext)
			if err != nil {
				return nil, err
			}
		}
		written, err := b.event(req, kvview.VersionWritten, b.subject(path), p)
		if err != nil {
			return nil, err
		}
		resp.Events = append(resp.Events, written)
		if v.value != nil {
			// Imported values are matched like written ones (sys/ledger/fingerprints, incident
			// reports), as of when the source wrote them: a secret moved from Vault is as likely
			// to leak as one written here.
			fp, err := b.fingerprintEventAt(req, fpview.KindKV, path, v.n, v.value, v.created)
			if err != nil {
				return nil, err
			}
			resp.Events = append(resp.Events, fp)
		}
		if v.destroyed {
			gone, err := b.event(req, kvview.VersionsDestroyed, b.subject(path), kvview.VersionsPayload{
				Mount: b.mount.UUID, Path: path, Versions: []uint64{v.n}, Time: req.Now.UTC(),
			})
			if err != nil {
				return nil, err
			}
			resp.Events = append(resp.Events, gone)
		}
	}
	last := versions[len(versions)-1]
	resp.Data = versionMetadata(s, last.n, kvview.Version{Created: last.created, Deletion: last.deletion, Destroyed: last.destroyed})
	resp.Warnings = ignored(req.Data, importFields...)
	return resp, nil
}

// parseImported reads and checks one version to import.
func parseImported(spec map[string]any, now time.Time) (importedVersion, error) {
	var v importedVersion
	n, err := engines.Int(spec, "version", 0)
	if err != nil {
		return v, err
	}
	if n < 1 {
		return v, engines.BadRequest("field \"version\": the source's version number is required, 1 or more")
	}
	v.n = uint64(n)
	if v.created, err = importTime(spec, "created_time"); err != nil {
		return v, err
	}
	if v.created.IsZero() {
		return v, engines.BadRequest("field \"created_time\": the source's created_time is required (RFC 3339)")
	}
	if v.created.After(now) {
		return v, engines.BadRequest("field \"created_time\": %s is in the future (the server's clock reads %s)", v.created.Format(time.RFC3339Nano), now.UTC().Format(time.RFC3339Nano))
	}
	if v.deletion, err = importTime(spec, "deletion_time"); err != nil {
		return v, err
	}
	if v.destroyed, err = engines.Bool(spec, "destroyed", false); err != nil {
		return v, err
	}
	if engines.Has(spec, "data") && spec["data"] != nil {
		if v.destroyed {
			return v, engines.BadRequest("field \"data\": a destroyed version is imported without its value")
		}
		if v.value, err = dataArg(spec); err != nil {
			return v, err
		}
	} else if !v.destroyed && v.deletion.IsZero() {
		return v, engines.BadRequest("no data provided: only a destroyed or deleted version may be imported without its value")
	}
	return v, nil
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
