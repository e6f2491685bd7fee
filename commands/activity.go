package commands

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/projections/activity"
)

// activityCounts serves sys/internal/counters/activity: distinct clients per month and per mount
// over [start_time, end_time], in Vault's shape. Ledger has one namespace (root). A client
// counts in a month when a token was issued to it that month (logins, token creation); the
// counts come from the log (the activity view), so every node and every replay agrees.
func (s *sysBackend) activityCounts(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	now := req.Now.UTC()
	end, err := activityTime(req.Data, "end_time", now)
	if err != nil {
		return nil, err
	}
	first := time.Date(end.Year(), end.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -11, 0)
	start, err := activityTime(req.Data, "start_time", first)
	if err != nil {
		return nil, err
	}
	if start.After(end) {
		return nil, engines.BadRequest("start_time is later than end_time")
	}
	if end.Sub(start) > 10*366*24*time.Hour {
		return nil, engines.BadRequest("the range from start_time to end_time is longer than ten years")
	}

	mountOf := func(path string) string {
		if m, ok := s.st.mounts.Match(path); ok {
			return m.Path
		}
		segs := strings.SplitN(path, "/", 3)
		if len(segs) >= 2 && segs[0] == "auth" {
			return "auth/" + segs[1] + "/"
		}
		return segs[0] + "/"
	}
	seen := map[string]string{} // client → mount, over the whole range
	entity := map[string]bool{}
	var months []any
	for m := time.Date(start.Year(), start.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(end); m = m.AddDate(0, 1, 0) {
		clients := s.st.sysv.activity.Month(activity.MonthKey(m))
		entry := map[string]any{"timestamp": m.Format(time.RFC3339), "counts": nil, "namespaces": nil, "new_clients": nil}
		if len(clients) > 0 {
			all, fresh := map[string]string{}, map[string]string{}
			for id, c := range clients {
				mp := mountOf(c.Path)
				all[id] = mp
				entity[id] = c.Entity
				if _, ok := seen[id]; !ok {
					seen[id] = mp
					fresh[id] = mp
				}
			}
			entry["counts"] = clientCounts(all, entity)
			entry["namespaces"] = namespaceCounts(all, entity)
			nc := map[string]any{"counts": nil, "namespaces": nil}
			if len(fresh) > 0 {
				nc = map[string]any{"counts": clientCounts(fresh, entity), "namespaces": namespaceCounts(fresh, entity)}
			}
			entry["new_clients"] = nc
		}
		months = append(months, entry)
	}
	if len(seen) == 0 {
		return nil, nil // Vault answers 204 when there is no activity in the range
	}
	return &engines.Response{Data: map[string]any{
		"start_time":   start.Format(time.RFC3339),
		"end_time":     end.Format(time.RFC3339),
		"total":        clientCounts(seen, entity),
		"by_namespace": namespaceCounts(seen, entity),
		"months":       months,
	}}, nil
}

// activityTime reads an RFC 3339 time or unix seconds, as Vault's TypeTime does.
func activityTime(data map[string]any, key string, def time.Time) (time.Time, error) {
	s, err := engines.String(data, key, "")
	if err != nil || s == "" {
		return def, err
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, engines.BadRequest("%s: %q is not an RFC 3339 time or unix seconds", key, s)
}

func clientCounts(clients map[string]string, entity map[string]bool) map[string]any {
	e := 0
	for id := range clients {
		if entity[id] {
			e++
		}
	}
	n := len(clients) - e
	return map[string]any{"clients": len(clients), "entity_clients": e, "non_entity_clients": n,
		"distinct_entities": e, "non_entity_tokens": n, "secret_syncs": 0, "acme_clients": 0}
}

// namespaceCounts is Vault's by_namespace list for the one (root) namespace, with its mounts by
// client count, largest first.
func namespaceCounts(clients map[string]string, entity map[string]bool) []any {
	byMount := map[string]map[string]string{}
	for id, mp := range clients {
		if byMount[mp] == nil {
			byMount[mp] = map[string]string{}
		}
		byMount[mp][id] = mp
	}
	paths := make([]string, 0, len(byMount))
	for p := range byMount {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool {
		if a, b := len(byMount[paths[i]]), len(byMount[paths[j]]); a != b {
			return a > b
		}
		return paths[i] < paths[j]
	})
	mounts := make([]any, 0, len(paths))
	for _, p := range paths {
		mounts = append(mounts, map[string]any{"mount_path": p, "counts": clientCounts(byMount[p], entity)})
	}
	return []any{map[string]any{"namespace_id": "root", "namespace_path": "", "counts": clientCounts(clients, entity), "mounts": mounts}}
}
