package kv

import (
	"context"

	"github.com/ledger-secrets/ledger/engines"
)

// subkeys/:path — the shape of a version's data with every value replaced by null.

func (b *Backend) handleSubkeys(ctx context.Context, req *engines.Request, path string) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, unsupported()
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	n, err := version(req.Data)
	if err != nil {
		return nil, err
	}
	depth, err := nonNegativeInt(req.Data, "depth")
	if err != nil {
		return nil, err
	}
	s, n, v, err := b.lookup(path, n)
	if err != nil {
		return nil, err
	}
	meta := versionMetadata(s, n, v)
	if v.Deleted(req.Now) || !v.HasValue() {
		return &engines.Response{Status: 404, Data: map[string]any{"subkeys": nil, "metadata": meta}}, nil
	}
	data, err := b.openJSON(ctx, v.KeyID, v.Sealed, valueAD(b.mount.UUID, path, n))
	if err != nil {
		return nil, err
	}
	return respond(map[string]any{"subkeys": subkeys(data, 1, depth), "metadata": meta}), nil
}

// subkeys rebuilds m with every leaf — a non-object, an empty object, or anything at the depth
// limit (0: none) — replaced by nil. It builds a new map, so no value can leak through it.
func subkeys(m map[string]any, level, depth int) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		child, ok := v.(map[string]any)
		if ok && len(child) > 0 && (depth == 0 || level < depth) {
			out[k] = subkeys(child, level+1, depth)
			continue
		}
		out[k] = nil
	}
	return out
}
