package kv

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// delete/:path, undelete/:path, destroy/:path — act on listed versions.

func (b *Backend) handleVersions(req *engines.Request, endpoint, path string) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, unsupported()
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	versions, err := versionsArg(req.Data)
	if err != nil {
		return nil, err
	}
	if len(versions) == 0 {
		if endpoint == "destroy" {
			return nil, engines.BadRequest("no version number provided")
		}
		return nil, engines.BadRequest("No version number provided")
	}
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return &engines.Response{}, nil // as Vault: nothing there, nothing to do
	}
	var pick []uint64
	var shred []string
	for _, n := range versions {
		v, ok := s.Versions[n]
		if !ok || v.Destroyed {
			continue
		}
		switch endpoint {
		case "delete":
			if v.Deleted(req.Now) {
				continue
			}
		case "destroy":
			if v.KeyID != "" {
				shred = append(shred, v.KeyID)
			}
		}
		pick = append(pick, n)
	}
	if len(pick) == 0 {
		return &engines.Response{}, nil
	}
	switch endpoint {
	case "delete":
		return b.versionsEvent(req, kvview.VersionsDeleted, path, pick, req.Now.UTC(), nil)
	case "undelete":
		// Undeleted versions are scheduled for deletion again if delete_version_after says so.
		return b.versionsEvent(req, kvview.VersionsUndeleted, path, pick, deletionTime(req.Now, b.view.Config(b.mount.UUID), s), nil)
	default:
		return b.versionsEvent(req, kvview.VersionsDestroyed, path, pick, req.Now.UTC(), shred)
	}
}

// versionsArg reads "versions" as Vault's comma-int-slice: a JSON array of integers (or numeric
// strings), a comma-separated string, or a single integer. Sorted, without duplicates.
func versionsArg(data map[string]any) ([]uint64, error) {
	raw, ok := data["versions"]
	if !ok || raw == nil {
		return nil, nil
	}
	bad := engines.BadRequest("field \"versions\": expected a list of version numbers")
	var items []any
	switch t := raw.(type) {
	case []any:
		items = t
	case string:
		for _, s := range strings.Split(t, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
	case []string:
		for _, s := range t {
			items = append(items, s)
		}
	default:
		items = []any{t}
	}
	seen := map[uint64]bool{}
	var out []uint64
	for _, it := range items {
		var n int64
		switch t := it.(type) {
		case json.Number:
			i, err := strconv.ParseInt(t.String(), 10, 64)
			if err != nil {
				return nil, bad
			}
			n = i
		case float64:
			if t != math.Trunc(t) || t > math.MaxInt64 || t < math.MinInt64 {
				return nil, bad
			}
			n = int64(t)
		case string:
			i, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
			if err != nil {
				return nil, bad
			}
			n = i
		case int:
			n = int64(t)
		default:
			return nil, bad
		}
		if n < 0 {
			return nil, bad
		}
		if !seen[uint64(n)] {
			seen[uint64(n)] = true
			out = append(out, uint64(n))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}
