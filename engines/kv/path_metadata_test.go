package kv

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

func TestMetadataReadShape(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/m", body(`{"data":{"a":1}}`))
	t1 := h.now
	h.ok(opCreate, "data/m", body(`{"data":{"a":2}}`))
	t2 := h.now
	h.ok(opDelete, "data/m", nil)
	t3 := h.now
	got := wire(t, h.ok(opRead, "metadata/m", nil))
	want := `{"cas_required":false,"created_time":"` + tsAt(t1) + `","current_version":2,"custom_metadata":null,` +
		`"delete_version_after":"0s","max_versions":0,"oldest_version":0,"updated_time":"` + tsAt(t2) + `",` +
		`"versions":{"1":{"created_time":"` + tsAt(t1) + `","deletion_time":"","destroyed":false},` +
		`"2":{"created_time":"` + tsAt(t2) + `","deletion_time":"` + tsAt(t3) + `","destroyed":false}}}`
	if got != want {
		t.Fatalf("metadata\n got %s\nwant %s", got, want)
	}
	h.fails(opRead, "metadata/none", nil, engines.ErrNotFound, "")
}

func TestMetadataWrite(t *testing.T) {
	h := newHarness(t, "2")
	// Metadata before any data: the path exists with no versions.
	resp := h.ok(opCreate, "metadata/w", body(`{"max_versions":"4","cas_required":"true","delete_version_after":"2h","custom_metadata":{"owner":"ops","n":7}}`))
	if resp.Data != nil || len(resp.Warnings) != 0 {
		t.Fatalf("metadata write answered %+v", resp)
	}
	md := h.ok(opRead, "metadata/w", nil).Data
	if md["max_versions"] != 4 || md["cas_required"] != true || md["delete_version_after"] != "2h0m0s" ||
		!reflect.DeepEqual(md["custom_metadata"], map[string]any{"owner": "ops", "n": "7"}) || md["current_version"] != uint64(0) {
		t.Fatalf("metadata %v", md)
	}
	h.fails(opRead, "data/w", nil, engines.ErrNotFound, "")
	if got := h.view.List(h.mount.UUID, ""); !reflect.DeepEqual(got, []string{"w"}) {
		t.Fatalf("list %v", got)
	}
	// custom_metadata appears in data responses.
	w := h.ok(opCreate, "data/w", body(`{"data":{"x":1},"options":{"cas":0}}`))
	if !reflect.DeepEqual(w.Data["custom_metadata"], map[string]any{"owner": "ops", "n": "7"}) {
		t.Fatalf("write response custom_metadata %v", w.Data["custom_metadata"])
	}
	// A POST changes only the fields it names; custom_metadata is replaced as a whole.
	h.ok(opUpdate, "metadata/w", body(`{"custom_metadata":{"team":"x"}}`))
	md = h.ok(opRead, "metadata/w", nil).Data
	if md["max_versions"] != 4 || md["cas_required"] != true || !reflect.DeepEqual(md["custom_metadata"], map[string]any{"team": "x"}) {
		t.Fatalf("after partial write %v", md)
	}
	// PATCH merges custom_metadata; null removes a key.
	h.ok(opPatch, "metadata/w", body(`{"custom_metadata":{"team":null,"env":"prod"},"max_versions":2}`))
	md = h.ok(opRead, "metadata/w", nil).Data
	if md["max_versions"] != 2 || !reflect.DeepEqual(md["custom_metadata"], map[string]any{"env": "prod"}) {
		t.Fatalf("after patch %v", md)
	}
	h.fails(opPatch, "metadata/none", body(`{"max_versions":2}`), engines.ErrNotFound, "")
	// Nothing to set: 204, no event.
	if r := h.ok(opUpdate, "metadata/w", map[string]any{}); len(r.Events) != 0 {
		t.Fatal("empty metadata write decided events")
	}
	// cas_required false while the mount requires it: a warning, as Vault.
	h.ok(opUpdate, "config", body(`{"cas_required":true}`))
	r := h.ok(opUpdate, "metadata/w", body(`{"cas_required":false}`))
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "mandated by backend config") {
		t.Fatalf("warnings %v", r.Warnings)
	}
}

func TestMetadataBadInput(t *testing.T) {
	h := newHarness(t, "2")
	long := strings.Repeat("k", 129)
	tests := []struct {
		name string
		body string
		msg  string
	}{
		{"max_versions not a number", `{"max_versions":"ten"}`, `field "max_versions": expected an integer`},
		{"max_versions negative", `{"max_versions":-1}`, `field "max_versions": must not be negative`},
		{"cas_required not a bool", `{"cas_required":"maybe"}`, `field "cas_required": expected a boolean`},
		{"dva negative", `{"delete_version_after":"-1h"}`, `field "delete_version_after": expected a duration such as "1h" or a number of seconds`},
		{"custom_metadata not an object", `{"custom_metadata":"x"}`, `custom_metadata validation failed: expected an object of strings`},
		{"custom_metadata nested", `{"custom_metadata":{"a":{"b":1}}}`, `custom_metadata validation failed: value for key "a" must be a string`},
		{"custom_metadata empty value", `{"custom_metadata":{"a":""}}`, `custom_metadata validation failed: length of value for key "a" is 0 but must be 0 < len(value) <= 512`},
		{"custom_metadata long key", `{"custom_metadata":{"` + long + `":"v"}}`, `custom_metadata validation failed: length of key "` + long + `" is 129 but must be 0 < len(key) <= 128`},
		{"custom_metadata unprintable", `{"custom_metadata":{"a":"x\u0007"}}`, `custom_metadata validation failed: value for key "a" contains unprintable characters`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(opUpdate, "metadata/bad", body(tc.body), engines.ErrBadRequest, tc.msg)
		})
	}
	many := map[string]any{}
	for i := range 65 {
		many[strings.Repeat("k", i+1)] = "v"
	}
	h.fails(opUpdate, "metadata/bad", map[string]any{"custom_metadata": many}, engines.ErrBadRequest,
		"custom_metadata validation failed: payload must contain at most 64 keys, provided 65")
	if _, ok := h.view.Secret(h.mount.UUID, "bad"); ok {
		t.Fatal("a refused write created the path")
	}
}

func TestMetadataDeleteRemovesEverything(t *testing.T) {
	h := newHarness(t, "2")
	for range 3 {
		h.ok(opCreate, "data/team/x", body(`{"data":{"a":1}}`))
	}
	h.ok(opCreate, "data/team/y", body(`{"data":{"a":1}}`))
	ids := h.view.KeyIDs(h.mount.UUID)
	if len(ids) != 4 {
		t.Fatalf("%d keys", len(ids))
	}
	h.ok(opDelete, "metadata/team/x", nil)
	h.fails(opRead, "metadata/team/x", nil, engines.ErrNotFound, "")
	h.fails(opRead, "data/team/x", nil, engines.ErrNotFound, "")
	if got := h.ok(opList, "metadata/team/", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"y"}) {
		t.Fatalf("list after delete %v", got)
	}
	left := 0
	for _, id := range ids {
		if _, ok := h.keys.Get(id); ok {
			left++
		}
	}
	if left != 1 {
		t.Fatalf("%d keys left, want the other path's 1", left)
	}
	// The path can start again from version 1.
	if r := h.ok(opCreate, "data/team/x", body(`{"data":{"a":2}}`)); r.Data["version"] != uint64(1) {
		t.Fatalf("recreated at version %v", r.Data["version"])
	}
	if r := h.ok(opDelete, "metadata/never", nil); len(r.Events) != 0 {
		t.Fatal("delete of a missing path decided events")
	}
}

func TestListV2(t *testing.T) {
	h := newHarness(t, "2")
	for _, p := range []string{"b", "a/1", "a/2", "a/deep/x", "c/y"} {
		h.ok(opCreate, "data/"+p, body(`{"data":{"k":"v"}}`))
	}
	tests := []struct{ path, want string }{
		{"metadata/", `["a/","b","c/"]`},
		{"metadata", `["a/","b","c/"]`},
		{"metadata/a/", `["1","2","deep/"]`},
		{"metadata/a", `["1","2","deep/"]`},
		{"metadata/a/deep/", `["x"]`},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			if got := wire(t, &engines.Response{Data: map[string]any{"k": h.ok(opList, tc.path, nil).Data["keys"]}}); got != `{"k":`+tc.want+`}` {
				t.Fatalf("got %s", got)
			}
		})
	}
	h.fails(opList, "metadata/nothing/", nil, engines.ErrNotFound, "")
	h.fails(opList, "data/a/", nil, engines.ErrUnsupported, "unsupported operation")
}

func TestConfig(t *testing.T) {
	h := newHarness(t, "2")
	if got := wire(t, h.ok(opRead, "config", nil)); got != `{"cas_required":false,"delete_version_after":"0s","max_versions":0}` {
		t.Fatalf("default config %s", got)
	}
	h.ok(opUpdate, "config", body(`{"max_versions":5,"cas_required":true,"delete_version_after":"3h25m19s"}`))
	if got := wire(t, h.ok(opRead, "config", nil)); got != `{"cas_required":true,"delete_version_after":"3h25m19s","max_versions":5}` {
		t.Fatalf("config %s", got)
	}
	h.ok(opUpdate, "config", body(`{"max_versions":7}`)) // others unchanged
	if got := wire(t, h.ok(opRead, "config", nil)); got != `{"cas_required":true,"delete_version_after":"3h25m19s","max_versions":7}` {
		t.Fatalf("config after partial write %s", got)
	}
	h.fails(opUpdate, "config", body(`{"max_versions":"ten"}`), engines.ErrBadRequest, `field "max_versions": expected an integer`)
	h.fails(opUpdate, "config", body(`{"delete_version_after":"soon"}`), engines.ErrBadRequest, `field "delete_version_after": expected a duration such as "1h" or a number of seconds`)
	h.fails(opDelete, "config", nil, engines.ErrUnsupported, "unsupported operation")
}
