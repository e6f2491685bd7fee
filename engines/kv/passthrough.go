package kv

import (
	"context"
	"encoding/json"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// KV v1: every path holds one map; a write replaces it, a delete removes it for good. Both
// shred the replaced value's data key, so an overwritten value is as gone as in Vault.

func (b *Backend) handleV1(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	switch {
	case req.Op == engines.OpList:
		return b.list(req.Path)
	case req.Op == engines.OpRead:
		return b.readV1(ctx, req)
	case isWrite(req.Op):
		return b.writeV1(ctx, req)
	case req.Op == engines.OpDelete:
		return b.deleteV1(req)
	}
	return nil, unsupported()
}

// readV1 answers the stored map. Like Vault it carries a lease duration but no lease: the
// "ttl" (or "lease") field of the value when it parses, else the mount's default lease TTL —
// a refresh hint for Vault Agent and consul-template. Secret.LeaseID stays empty.
func (b *Backend) readV1(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	v, ok := b.view.Value(b.mount.UUID, req.Path)
	if !ok {
		return nil, engines.ErrNotFound
	}
	data, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, req.Path, 0))
	if err != nil {
		return nil, err
	}
	ttl := b.mount.DefaultLeaseTTL
	for _, k := range []string{"ttl", "lease"} {
		if engines.Has(data, k) {
			if d, err := engines.Duration(data, k, 0); err == nil {
				ttl = d
			}
			break
		}
	}
	return &engines.Response{Data: data, Secret: &engines.Secret{LeaseDuration: ttl}}, nil
}

func (b *Backend) writeV1(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if err := checkPath(req.Path); err != nil {
		return nil, err
	}
	if len(req.Data) == 0 {
		return nil, engines.BadRequest("missing data fields")
	}
	plaintext, err := json.Marshal(req.Data)
	if err != nil {
		return nil, engines.BadRequest("the request body cannot be encoded as JSON")
	}
	defer clear(plaintext)
	keyID, sealed, err := b.seal(ctx, plaintext, valueAD(b.mount.UUID, req.Path, 0))
	if err != nil {
		return nil, err
	}
	p := kvview.V1WrittenPayload{Mount: b.mount.UUID, Path: req.Path, Time: req.Now.UTC(), KeyID: keyID, Sealed: sealed}
	if old, ok := b.view.Value(b.mount.UUID, req.Path); ok && old.KeyID != "" {
		p.Shred = []string{old.KeyID}
	}
	ev, err := b.event(req, kvview.V1Written, b.subject(req.Path), p)
	if err != nil {
		return nil, err
	}
	fp, err := b.fingerprintEvent(req, fpview.KindKVv1, req.Path, 0, req.Data)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev, fp}}, nil
}

func (b *Backend) deleteV1(req *engines.Request) (*engines.Response, error) {
	v, ok := b.view.Value(b.mount.UUID, req.Path)
	if !ok {
		return &engines.Response{}, nil
	}
	p := kvview.PathPayload{Mount: b.mount.UUID, Path: req.Path}
	if v.KeyID != "" {
		p.Shred = []string{v.KeyID}
	}
	ev, err := b.event(req, kvview.V1Deleted, b.subject(req.Path), p)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}
