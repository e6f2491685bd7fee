package engines

import (
	"reflect"
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
