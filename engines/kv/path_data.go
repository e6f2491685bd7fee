package kv

import (
	"context"
	"encoding/json"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// data/:path — read a version, write a new one, patch the latest, soft-delete the latest.

func (b *Backend) handleData(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
	if req.Op == engines.OpList {
		return nil, unsupported()
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	switch {
	case req.Op == engines.OpRead:
		return b.readData(ctx, req, path)
	case isWrite(req.Op):
		return b.writeData(ctx, req, path, false)
	case req.Op == engines.OpPatch:
		return b.writeData(ctx, req, path, true)
	case req.Op == engines.OpDelete:
		return b.deleteLatest(req, path)
	}
	return nil, unsupported()
}

// versionMetadata is the "metadata" block of a read (and the body of a write).
func versionMetadata(s kvview.Secret, n uint64, v kvview.Version) map[string]any {
	return map[string]any{
		"version":         n,
		"created_time":    ts(v.Created),
		"deletion_time":   ts(v.Deletion),
		"destroyed":       v.Destroyed,
		"custom_metadata": customMetadata(s.CustomMetadata),
	}
}

// version reads the version parameter: 0 (or absent, or negative) means the current version.
func version(data map[string]any) (uint64, error) {
	n, err := engines.Int(data, "version", 0)
	if err != nil {
		return 0, err
	}
	return uint64(max(n, 0)), nil
}

// lookup finds version n (0: current) of a secret. A missing path or version is ErrNotFound.
func (b *Backend) lookup(path string, n uint64) (kvview.Secret, uint64, kvview.Version, error) {
	s, n, v, ok := b.view.SecretVersion(b.mount.UUID, path, n)
	if !ok {
		return s, 0, kvview.Version{}, engines.ErrNotFound
	}
	return s, n, v, nil
}

func (b *Backend) readData(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
	n, err := version(req.Data)
	if err != nil {
		return nil, err
	}
	s, n, v, err := b.lookup(path, n)
	if err != nil {
		return nil, err
	}
	meta := versionMetadata(s, n, v)
	if v.Deleted(req.Now) || !v.HasValue() {
		// Vault answers 404 and still shows the version's metadata.
		return &engines.Response{Status: 404, Data: map[string]any{"data": nil, "metadata": meta}}, nil
	}
	data, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, n))
	if err != nil {
		return nil, err
	}
	return respond(map[string]any{"data": data, "metadata": meta}), nil
}

// checkAndSet applies Vault's check-and-set rules: options.cas, when given, must equal the
// current version (0: the path must have none); it is required when the mount or the path says.
func checkAndSet(options map[string]any, cfg kvview.Config, s kvview.Secret) error {
	if _, given := options["cas"]; given && options["cas"] != nil {
		cas, err := engines.Int(options, "cas", 0)
		if err != nil {
			return engines.BadRequest("error parsing check-and-set parameter")
		}
		if cas < 0 || uint64(cas) != s.CurrentVersion {
			return engines.BadRequest("check-and-set parameter did not match the current version")
		}
		return nil
	}
	if cfg.CASRequired || s.CASRequired {
		return engines.BadRequest("check-and-set parameter required for this call")
	}
	return nil
}

// deletionTime is when a version created at t is deleted by delete_version_after: the smaller
// non-zero of the mount's and the path's setting; zero when neither is set or the mount
// disables it.
func deletionTime(t time.Time, cfg kvview.Config, s kvview.Secret) time.Time {
	if cfg.DeleteVersionAfter < 0 {
		return time.Time{}
	}
	d := s.DeleteVersionAfter
	if cfg.DeleteVersionAfter != 0 && (d == 0 || cfg.DeleteVersionAfter < d) {
		d = cfg.DeleteVersionAfter
	}
	if d <= 0 {
		return time.Time{}
	}
	return t.Add(d).UTC()
}

// maxVersions is the number of versions a path keeps: its own setting, else the mount's, else 10.
func maxVersions(cfg kvview.Config, s kvview.Secret) uint64 {
	switch {
	case s.MaxVersions > 0:
		return uint64(s.MaxVersions)
	case cfg.MaxVersions > 0:
		return uint64(cfg.MaxVersions)
	}
	return DefaultMaxVersions
}

// trim decides, as Vault does when a version is added, which versions fall out of the window
// of max versions, and the oldest version afterwards. The view applies exactly this decision.
func trim(cfg kvview.Config, s kvview.Secret, newVersion uint64) (trimmed []uint64, shred []string, oldest uint64) {
	limit, oldest := maxVersions(cfg, s), s.OldestVersion
	if newVersion-oldest < limit {
		return nil, nil, oldest
	}
	last := newVersion - limit
	for n := oldest; n <= last; n++ {
		if v, ok := s.Versions[n]; ok {
			trimmed = append(trimmed, n)
			if v.KeyID != "" {
				shred = append(shred, v.KeyID)
			}
		}
	}
	return trimmed, shred, last + 1
}

// dataArg returns the request's "data" object.
func dataArg(data map[string]any) (map[string]any, error) {
	raw, ok := data["data"]
	if !ok || raw == nil {
		return nil, engines.BadRequest("no data provided")
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, engines.BadRequest("field \"data\": expected an object")
	}
	return m, nil
}

// optionsArg returns the request's "options" object (empty when absent).
func optionsArg(data map[string]any) (map[string]any, error) {
	raw, ok := data["options"]
	if !ok || raw == nil {
		return map[string]any{}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, engines.BadRequest("field \"options\": expected an object")
	}
	return m, nil
}

func ignored(data map[string]any, allowed ...string) []string {
	if unknown := engines.Unknown(data, allowed...); len(unknown) > 0 {
		b, _ := json.Marshal(unknown)
		return []string{"Endpoint ignored these unrecognized parameters: " + string(b)}
	}
	return nil
}

// writeData writes a new version: the request's data (write), or the latest version with the
// request's data merged in as a JSON merge patch (patch).
func (b *Backend) writeData(ctx context.Context, req *engines.Request, path string, patch bool) (*engines.Response, error) {
	input, err := dataArg(req.Data)
	if err != nil {
		return nil, err
	}
	options, err := optionsArg(req.Data)
	if err != nil {
		return nil, err
	}
	cfg := b.view.Config(b.mount.UUID)
	s, exists := b.view.Secret(b.mount.UUID, path)
	if patch && !exists {
		return nil, engines.ErrNotFound
	}
	if err := checkAndSet(options, cfg, s); err != nil {
		return nil, err
	}
	value := input
	if patch {
		cur, ok := s.Versions[s.CurrentVersion]
		if !ok {
			return nil, engines.ErrNotFound
		}
		if cur.Deleted(req.Now) || !cur.HasValue() {
			return &engines.Response{Status: 404, Data: versionMetadata(s, s.CurrentVersion, cur)}, nil
		}
		old, err := b.openJSON(ctx, cur.KeyID, cur.Sealed, valueAD(b.mount.UUID, path, s.CurrentVersion))
		if err != nil {
			return nil, err
		}
		value = mergePatch(old, input).(map[string]any)
	}
	plaintext, err := json.Marshal(value)
	if err != nil {
		return nil, engines.BadRequest("field \"data\": cannot be encoded as JSON")
	}
	defer clear(plaintext)

	n := s.CurrentVersion + 1
	created := req.Now.UTC()
	keyID, sealed, err := b.seal(ctx, plaintext, valueAD(b.mount.UUID, path, n))
	if err != nil {
		return nil, err
	}
	trimmed, shred, oldest := trim(cfg, s, n)
	p := kvview.VersionWrittenPayload{
		Mount: b.mount.UUID, Path: path, Version: n, Created: created,
		Deletion: deletionTime(created, cfg, s),
		KeyID:    keyID, Sealed: sealed, Trim: trimmed, Oldest: oldest, Shred: shred,
		Patch: patch,
	}
	ev, err := b.event(req, kvview.VersionWritten, b.subject(path), p)
	if err != nil {
		return nil, err
	}
	fp, err := b.fingerprintEvent(req, fpview.KindKV, path, n, value)
	if err != nil {
		return nil, err
	}
	resp := respond(versionMetadata(s, n, kvview.Version{Created: created, Deletion: p.Deletion}), ev, fp)
	resp.Warnings = ignored(req.Data, "data", "options")
	return resp, nil
}

// mergePatch applies an RFC 7386 JSON merge patch: objects merge key by key, null removes a
// key, anything else replaces.
func mergePatch(target, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	tm, ok := target.(map[string]any)
	if !ok {
		tm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(tm, k)
			continue
		}
		tm[k] = mergePatch(tm[k], v)
	}
	return tm
}

// deleteLatest soft-deletes the current version (DELETE data/:path). Nothing to delete is not
// an error.
func (b *Backend) deleteLatest(req *engines.Request, path string) (*engines.Response, error) {
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return &engines.Response{}, nil
	}
	v, ok := s.Versions[s.CurrentVersion]
	if !ok || v.Destroyed || v.Deleted(req.Now) {
		return &engines.Response{}, nil
	}
	ev, err := b.event(req, kvview.VersionsDeleted, b.subject(path), kvview.VersionsPayload{
		Mount: b.mount.UUID, Path: path, Versions: []uint64{s.CurrentVersion}, Time: req.Now.UTC(), Latest: true,
	})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

func (b *Backend) versionsEvent(req *engines.Request, typ, path string, versions []uint64, t time.Time, shred []string) (*engines.Response, error) {
	ev, err := b.event(req, typ, b.subject(path), kvview.VersionsPayload{
		Mount: b.mount.UUID, Path: path, Versions: versions, Time: t, Shred: shred,
	})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}
