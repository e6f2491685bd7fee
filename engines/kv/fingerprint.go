package kv

import (
	"context"
	"errors"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// fingerprintEvent records the keyed fingerprints of a written value's fields (see
// fpview.FieldFingerprints), beside the event that writes it.
func (b *Backend) fingerprintEvent(req *engines.Request, kind, path string, version uint64, value map[string]any) (ledger.Event, error) {
	return b.fingerprintEventAt(req, kind, path, version, value, req.Now)
}

// fingerprintEventAt is fingerprintEvent for a value written at another time than the request
// (an imported version keeps its source's creation time).
func (b *Backend) fingerprintEventAt(req *engines.Request, kind, path string, version uint64, value map[string]any, written time.Time) (ledger.Event, error) {
	actor := ""
	if req.Caller != nil {
		actor = req.Caller.Accessor
	}
	return fpview.Event(fpview.RecordedPayload{
		Kind: kind, Mount: b.mount.UUID, Path: path, Version: version,
		Fields: fpview.FieldFingerprints(value, b.keyring.Fingerprint), Time: written.UTC(),
	}, actor, req.ID, req.Now)
}

// BackfillEvents returns the fingerprint events of the values at path that were written before
// fingerprints existed: every KV v2 version still holding its value (live or soft-deleted)
// that has no fingerprints in fps, or the KV v1 value. A destroyed or trimmed version cannot be
// fingerprinted any more (its key is shredded) and is skipped. Idempotent: what fps knows is
// skipped, and the view ignores a backfilled value it already has.
func (b *Backend) BackfillEvents(ctx context.Context, fps *fpview.View, path string, now time.Time) ([]ledger.Event, error) {
	var out []ledger.Event
	add := func(kind string, version uint64, written time.Time, value map[string]any) error {
		ev, err := fpview.Event(fpview.RecordedPayload{
			Kind: kind, Mount: b.mount.UUID, Path: path, Version: version,
			Fields: fpview.FieldFingerprints(value, b.keyring.Fingerprint), Time: written, Backfilled: true,
		}, "", "", now)
		if err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	}
	if !b.v2 {
		v, ok := b.view.Value(b.mount.UUID, path)
		if !ok || v.KeyID == "" || fps.Has(fpview.KindKVv1, b.mount.UUID, path, 0) {
			return nil, nil
		}
		value, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, 0))
		if err != nil {
			return nil, err
		}
		return out, add(fpview.KindKVv1, 0, v.Created, value)
	}
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return nil, nil
	}
	for n := s.OldestVersion; n <= s.CurrentVersion; n++ {
		v, ok := s.Versions[n]
		if !ok || v.Destroyed || v.KeyID == "" || fps.Has(fpview.KindKV, b.mount.UUID, path, n) {
			continue
		}
		value, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, n))
		if errors.Is(err, ErrValueGone) {
			continue // shredded while we looked
		}
		if err != nil {
			return nil, err
		}
		if err := add(fpview.KindKV, n, v.Created, value); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// VersionValue opens a version's value (KV v1: version 0) for the server's own use — the
// incident report HMACs its fields to find their reads in the audit trail; it never leaves the
// server. ErrValueGone or ok=false when the version holds no value any more.
func (b *Backend) VersionValue(ctx context.Context, path string, version uint64) (map[string]any, bool, error) {
	if !b.v2 {
		v, ok := b.view.Value(b.mount.UUID, path)
		if !ok || v.KeyID == "" {
			return nil, false, nil
		}
		m, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, 0))
		return m, err == nil, err
	}
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return nil, false, nil
	}
	v, ok := s.Versions[version]
	if !ok || v.Destroyed || v.KeyID == "" {
		return nil, false, nil
	}
	m, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, version))
	if errors.Is(err, ErrValueGone) {
		return nil, false, nil
	}
	return m, err == nil, err
}
