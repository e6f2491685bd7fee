package kv

import "sort"

// Paths lists every secret path of a mount (KV v2 secrets and KV v1 values), sorted: what the
// fingerprint backfill walks, resumable from any path.
func (v *View) Paths(mountUUID string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	m := v.mounts[mountUUID]
	if m == nil {
		return nil
	}
	out := make([]string, 0, len(m.secrets)+len(m.values))
	for p := range m.secrets {
		out = append(out, p)
	}
	for p := range m.values {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
