package engines

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

func TestMatchRoutes(t *testing.T) {
	routes := []Route{
		{Pattern: "mounts"},
		{Pattern: "mounts/{path...}"},
		{Pattern: "mounts/{path...}/tune"},
		{Pattern: "keys/{name}"},
		{Pattern: "keys/{name}/rotate"},
		{Pattern: "data/{path...}"},
		{Pattern: "roles"},
	}
	for _, tc := range []struct {
		path, pattern string
		params        map[string]string
	}{
		{"mounts", "mounts", map[string]string{}},
		{"mounts/secret", "mounts/{path...}", map[string]string{"path": "secret"}},
		{"mounts/a/b/", "mounts/{path...}", map[string]string{"path": "a/b"}},
		{"mounts/a/b/tune", "mounts/{path...}/tune", map[string]string{"path": "a/b"}},
		{"mounts/tune", "mounts/{path...}", map[string]string{"path": "tune"}},
		{"keys/k", "keys/{name}", map[string]string{"name": "k"}},
		{"keys/k/rotate", "keys/{name}/rotate", map[string]string{"name": "k"}},
		{"data/a/b/c", "data/{path...}", map[string]string{"path": "a/b/c"}},
		{"roles/", "roles", map[string]string{}},
	} {
		r, params, ok := Match(routes, tc.path)
		if !ok || r.Pattern != tc.pattern || !reflect.DeepEqual(params, tc.params) {
			t.Errorf("Match(%q) = %q %v %v, want %q %v", tc.path, r.Pattern, params, ok, tc.pattern, tc.params)
		}
	}
	for _, p := range []string{"", "keys", "keys/k/other", "data", "nothing/here", "keys/k/rotate/x"} {
		if r, _, ok := Match(routes, p); ok {
			t.Errorf("Match(%q) = %q, want no match", p, r.Pattern)
		}
	}
}

func TestIgnoredAndShadows(t *testing.T) {
	r := Route{Fields: []Field{{Name: "ttl"}, {Name: "policies"}, {Name: "name", In: "path"}}}
	ig, sh := r.Ignored(map[string]any{"ttl": "1h", "TTL": "5h", "mount_point": "x", "name": "n"})
	if !reflect.DeepEqual(ig, []string{"TTL", "mount_point"}) || !reflect.DeepEqual(sh, map[string]string{"TTL": "ttl"}) {
		t.Fatalf("ignored %v shadows %v", ig, sh)
	}
	if ig, _ := (Route{ArbitraryInput: true}).Ignored(map[string]any{"x": 1}); ig != nil {
		t.Fatalf("arbitrary input ignored %v", ig)
	}
}

// splitMatch is the matcher as first written, splitting pattern and path: the reference the
// allocation-free matchPattern must agree with.
func splitMatch(pattern, path string) (map[string]string, int, bool) {
	pp := strings.Split(pattern, "/")
	if pattern == "" {
		pp = nil
	}
	var segs []string
	if path != "" {
		segs = strings.Split(path, "/")
	}
	params := map[string]string{}
	score := 0
	for i, p := range pp {
		if name, ok := strings.CutPrefix(p, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				tail := pp[i+1:]
				if len(segs)-i <= len(tail) {
					return nil, 0, false
				}
				end := len(segs) - len(tail)
				for j, lit := range tail {
					if strings.HasPrefix(lit, "{") || segs[end+j] != lit {
						return nil, 0, false
					}
					score++
				}
				params[rest] = strings.Join(segs[i:end], "/")
				return params, score, true
			}
			if i >= len(segs) || segs[i] == "" {
				return nil, 0, false
			}
			params[name] = segs[i]
			continue
		}
		if i >= len(segs) || segs[i] != p {
			return nil, 0, false
		}
		score++
	}
	return params, score, len(segs) == len(pp)
}

// TestMatchPatternAgreesWithSplitting compares every pattern with every path, both built from
// the same few segments, against the splitting matcher.
func TestMatchPatternAgreesWithSplitting(t *testing.T) {
	parts := []string{"a", "b", "", "{x}", "{rest...}", "{y}"}
	var patterns, paths []string
	var build func(prefix string, n int)
	build = func(prefix string, n int) {
		patterns = append(patterns, prefix)
		if !strings.Contains(prefix, "{") {
			paths = append(paths, prefix)
		}
		if n == 0 {
			return
		}
		for _, p := range parts {
			next := p
			if prefix != "" || n < 4 {
				next = prefix + "/" + p
			}
			build(next, n-1)
		}
	}
	build("", 4)
	checked := 0
	for _, pat := range patterns {
		for _, path := range paths {
			wantParams, wantScore, wantOK := splitMatch(pat, path)
			params := map[string]string{}
			score, ok := matchPattern(pat, path, params)
			if ok != wantOK || (ok && (score != wantScore || !reflect.DeepEqual(params, wantParams))) {
				t.Fatalf("matchPattern(%q, %q) = %v %d %v, want %v %d %v", pat, path, params, score, ok, wantParams, wantScore, wantOK)
			}
			if s, ok2 := matchPattern(pat, path, nil); ok2 != ok || s != score {
				t.Fatalf("matchPattern(%q, %q) without params = %d %v, with = %d %v", pat, path, s, ok2, score, ok)
			}
			checked++
		}
	}
	if checked < 10000 {
		t.Fatalf("only %d cases", checked)
	}
	// Match over tables of a few dozen of the patterns picks what a walk of every route with
	// the splitting matcher picks: the first route of the highest score.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		table := make([]Route, 30)
		for i := range table {
			table[i] = Route{Pattern: patterns[rng.IntN(len(patterns))]}
		}
		for _, path := range append(paths, "a/", "b/a/") {
			best, bestScore, wantParams := -1, -1, map[string]string(nil)
			for i, r := range table {
				if params, score, ok := splitMatch(r.Pattern, strings.TrimSuffix(path, "/")); ok && score > bestScore {
					best, bestScore, wantParams = i, score, params
				}
			}
			r, params, ok := Match(table, path)
			if ok != (best >= 0) || (ok && (r.Pattern != table[best].Pattern || !reflect.DeepEqual(params, wantParams))) {
				t.Fatalf("Match(%q) = %q %v %v, want route %d", path, r.Pattern, params, ok, best)
			}
		}
	}
}
