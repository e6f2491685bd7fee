package kv

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

const (
	opRead   = engines.OpRead
	opCreate = engines.OpCreate
	opUpdate = engines.OpUpdate
	opPatch  = engines.OpPatch
	opDelete = engines.OpDelete
	opList   = engines.OpList
)

func tsAt(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func TestWriteAndReadShapes(t *testing.T) {
	h := newHarness(t, "2")
	resp := h.ok(opCreate, "data/app/db", body(`{"data":{"user":"admin","port":5432,"nested":{"a":true}}}`))
	created := h.now
	want := `{"created_time":"` + tsAt(created) + `","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}`
	if got := wire(t, resp); got != want {
		t.Fatalf("write response\n got %s\nwant %s", got, want)
	}
	if resp.Status != 0 || len(resp.Warnings) != 0 {
		t.Fatalf("status %d warnings %v", resp.Status, resp.Warnings)
	}
	if len(resp.Events) != 2 || resp.Events[0].Type != kvview.VersionWritten || resp.Events[1].Type != fpview.Recorded ||
		strings.Contains(string(resp.Events[1].Payload), "admin") ||
		resp.Events[0].Subject != ledger.SubjectFor("kv", h.mount.UUID, "app/db") || resp.Events[0].Actor != "accessor-1" {
		t.Fatalf("events %+v", resp.Events)
	}
	if strings.Contains(string(resp.Events[0].Payload), "admin") {
		t.Fatal("event payload holds the value in the clear")
	}

	read := h.ok(opRead, "data/app/db", nil)
	want = `{"data":{"nested":{"a":true},"port":5432,"user":"admin"},"metadata":{"created_time":"` + tsAt(created) +
		`","custom_metadata":null,"deletion_time":"","destroyed":false,"version":1}}`
	if got := wire(t, read); got != want {
		t.Fatalf("read response\n got %s\nwant %s", got, want)
	}
	if read.Status != 0 || read.Secret != nil {
		t.Fatalf("read status %d secret %+v", read.Status, read.Secret)
	}

	h.ok(opUpdate, "data/app/db", body(`{"data":{"user":"v2"}}`))
	h.ok(opUpdate, "data/app/db", body(`{"data":{"user":"v3"}}`))
	tests := []struct {
		name    string
		query   map[string]any
		want    string
		version int
	}{
		{"latest", nil, "v3", 3},
		{"version as query string", map[string]any{"version": "1"}, "admin", 1},
		{"version as number", map[string]any{"version": json.Number("2")}, "v2", 2},
		{"version 0 is latest", map[string]any{"version": "0"}, "v3", 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.ok(opRead, "data/app/db", tc.query)
			data := r.Data["data"].(map[string]any)
			meta := r.Data["metadata"].(map[string]any)
			if data["user"] != tc.want || meta["version"] != uint64(tc.version) {
				t.Fatalf("got %v / version %v", data["user"], meta["version"])
			}
		})
	}
	h.fails(opRead, "data/app/db", map[string]any{"version": "99"}, engines.ErrNotFound, "")
	h.fails(opRead, "data/app/db", map[string]any{"version": "abc"}, engines.ErrBadRequest, `field "version": expected an integer`)
	h.fails(opRead, "data/app/nope", nil, engines.ErrNotFound, "")
	h.fails(opRead, "data/app", nil, engines.ErrNotFound, "") // a folder is not a secret
}

func TestWriteIgnoresUnknownFields(t *testing.T) {
	h := newHarness(t, "2")
	resp := h.ok(opCreate, "data/x", body(`{"data":{"k":"v"},"extra":"DO-NOT-STORE","zzz":1}`))
	if !reflect.DeepEqual(resp.Warnings, []string{`Endpoint ignored these unrecognized parameters: ["extra","zzz"]`}) {
		t.Fatalf("warnings %v", resp.Warnings)
	}
	got := h.ok(opRead, "data/x", nil).Data["data"]
	if !reflect.DeepEqual(got, map[string]any{"k": "v"}) {
		t.Fatalf("stored %v", got)
	}
}

func TestCheckAndSet(t *testing.T) {
	h := newHarness(t, "2")
	const (
		mismatch = "check-and-set parameter did not match the current version"
		required = "check-and-set parameter required for this call"
	)
	h.fails(opCreate, "data/c", body(`{"data":{"a":1},"options":{"cas":1}}`), engines.ErrBadRequest, mismatch)
	h.ok(opCreate, "data/c", body(`{"data":{"a":1},"options":{"cas":0}}`)) // cas 0: create only
	h.fails(opUpdate, "data/c", body(`{"data":{"a":2},"options":{"cas":0}}`), engines.ErrBadRequest, mismatch)
	h.fails(opUpdate, "data/c", body(`{"data":{"a":2},"options":{"cas":2}}`), engines.ErrBadRequest, mismatch)
	h.fails(opUpdate, "data/c", body(`{"data":{"a":2},"options":{"cas":-1}}`), engines.ErrBadRequest, mismatch)
	h.fails(opUpdate, "data/c", body(`{"data":{"a":2},"options":{"cas":"one"}}`), engines.ErrBadRequest, "error parsing check-and-set parameter")
	h.ok(opUpdate, "data/c", body(`{"data":{"a":2},"options":{"cas":1}}`))
	h.ok(opUpdate, "data/c", body(`{"data":{"a":3},"options":{"cas":"2"}}`)) // numeric string, as Vault's weak decoding

	// Required by the mount.
	h.ok(opUpdate, "config", body(`{"cas_required":true}`))
	h.fails(opUpdate, "data/c", body(`{"data":{"a":4}}`), engines.ErrBadRequest, required)
	h.fails(opCreate, "data/new", body(`{"data":{"a":4}}`), engines.ErrBadRequest, required)
	h.ok(opCreate, "data/new", body(`{"data":{"a":4},"options":{"cas":0}}`))
	h.fails(opPatch, "data/c", body(`{"data":{"a":4}}`), engines.ErrBadRequest, required)
	h.ok(opUpdate, "config", body(`{"cas_required":false}`))

	// Required by the path.
	h.ok(opUpdate, "metadata/c", body(`{"cas_required":true}`))
	h.fails(opUpdate, "data/c", body(`{"data":{"a":4}}`), engines.ErrBadRequest, required)
	h.ok(opUpdate, "data/c", body(`{"data":{"a":4},"options":{"cas":3}}`))
	h.ok(opUpdate, "data/other", body(`{"data":{"a":4}}`)) // other paths unaffected

	// A metadata-only path has version 0: cas 0 passes.
	h.ok(opUpdate, "metadata/pre", body(`{"cas_required":true}`))
	h.ok(opCreate, "data/pre", body(`{"data":{"a":1},"options":{"cas":0}}`))
}

func TestPatch(t *testing.T) {
	h := newHarness(t, "2")
	h.fails(opPatch, "data/p", body(`{"data":{"a":1}}`), engines.ErrNotFound, "")
	h.ok(opCreate, "data/p", body(`{"data":{"keep":"k","drop":"d","obj":{"x":1,"y":2},"list":[1,2]}}`))
	resp := h.ok(opPatch, "data/p", body(`{"data":{"drop":null,"obj":{"y":null,"z":3},"list":[3],"new":"n"},"options":{"cas":1}}`))
	if resp.Data["version"] != uint64(2) {
		t.Fatalf("patch response %v", resp.Data)
	}
	got := wire(t, &engines.Response{Data: h.ok(opRead, "data/p", nil).Data["data"].(map[string]any)})
	if want := `{"keep":"k","list":[3],"new":"n","obj":{"x":1,"z":3}}`; got != want {
		t.Fatalf("patched\n got %s\nwant %s", got, want)
	}
	h.fails(opPatch, "data/p", body(`{"data":{"a":1},"options":{"cas":1}}`), engines.ErrBadRequest, "check-and-set parameter did not match the current version")
	h.fails(opPatch, "data/p", body(`{"options":{}}`), engines.ErrBadRequest, "no data provided")

	// The latest version soft-deleted: 404 with its metadata, nothing written.
	h.ok(opDelete, "data/p", nil)
	resp = h.ok(opPatch, "data/p", body(`{"data":{"a":1}}`))
	if resp.Status != 404 || len(resp.Events) != 0 || resp.Data["version"] != uint64(2) || resp.Data["deletion_time"] == "" {
		t.Fatalf("patch of a deleted version: %+v", resp)
	}
}

func TestSoftDeleteUndelete(t *testing.T) {
	h := newHarness(t, "2")
	for i := range 3 {
		h.ok(opCreate, "data/s", map[string]any{"data": map[string]any{"v": float64(i + 1)}})
	}
	// DELETE data/:path soft-deletes the latest.
	h.ok(opDelete, "data/s", nil)
	deletedAt := h.now
	resp := h.ok(opRead, "data/s", nil)
	if resp.Status != 404 {
		t.Fatalf("read of a deleted version: status %d", resp.Status)
	}
	want := `{"data":null,"metadata":{"created_time":"` + tsAt(epoch.Add(3*time.Millisecond)) +
		`","custom_metadata":null,"deletion_time":"` + tsAt(deletedAt) + `","destroyed":false,"version":3}}`
	if got := wire(t, resp); got != want {
		t.Fatalf("deleted read\n got %s\nwant %s", got, want)
	}
	// Deleting again is a no-op; older versions still read.
	if r := h.ok(opDelete, "data/s", nil); len(r.Events) != 0 {
		t.Fatal("second delete decided events")
	}
	if r := h.ok(opRead, "data/s", map[string]any{"version": "2"}); r.Status != 0 {
		t.Fatal("version 2 not readable")
	}

	// delete/:path with versions, in every shape Vault accepts.
	for _, versions := range []any{[]any{json.Number("1")}, "1,2", json.Number("2"), []any{"1", json.Number("2")}} {
		h.ok(opUpdate, "undelete/s", map[string]any{"versions": []any{json.Number("1"), json.Number("2")}})
		h.ok(opUpdate, "delete/s", map[string]any{"versions": versions})
	}
	h.ok(opUpdate, "delete/s", body(`{"versions":[1,2]}`))
	for _, n := range []string{"1", "2", "3"} {
		if r := h.ok(opRead, "data/s", map[string]any{"version": n}); r.Status != 404 {
			t.Fatalf("version %s readable after delete", n)
		}
	}
	md := h.ok(opRead, "metadata/s", nil).Data["versions"].(map[string]any)
	for _, n := range []string{"1", "2", "3"} {
		if md[n].(map[string]any)["deletion_time"] == "" {
			t.Fatalf("metadata of version %s shows no deletion_time", n)
		}
	}

	h.ok(opUpdate, "undelete/s", body(`{"versions":[1,3,77]}`))
	for n, status := range map[string]int{"1": 0, "2": 404, "3": 0} {
		r := h.ok(opRead, "data/s", map[string]any{"version": n})
		if r.Status != status {
			t.Fatalf("version %s: status %d, want %d", n, r.Status, status)
		}
		if status == 0 && r.Data["metadata"].(map[string]any)["deletion_time"] != "" {
			t.Fatalf("undeleted version %s keeps a deletion_time", n)
		}
	}
	// Nothing at the path, or nothing applicable: 204 without events.
	if r := h.ok(opUpdate, "delete/missing", body(`{"versions":[1]}`)); len(r.Events) != 0 || r.Data != nil {
		t.Fatal("delete of a missing path decided something")
	}
	if r := h.ok(opDelete, "data/missing", nil); len(r.Events) != 0 {
		t.Fatal("DELETE of a missing path decided something")
	}
}

func TestDestroyShredsKeys(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/d", body(`{"data":{"v":"one"}}`))
	h.ok(opCreate, "data/d", body(`{"data":{"v":"two"}}`))
	s, _ := h.view.Secret(h.mount.UUID, "d")
	k1, k2 := s.Versions[1].KeyID, s.Versions[2].KeyID
	if _, ok := h.keys.Get(k1); !ok {
		t.Fatal("control: key of version 1 missing before destroy")
	}
	resp := h.ok(opUpdate, "destroy/d", body(`{"versions":[1]}`))
	if resp.Data != nil || len(resp.Events) != 1 || resp.Events[0].Type != kvview.VersionsDestroyed {
		t.Fatalf("destroy response %+v", resp)
	}
	if _, ok := h.keys.Get(k1); ok {
		t.Fatal("key of the destroyed version still in memory")
	}
	if _, err := h.keys.Fetch(context.Background(), h.keyring, k1); !errors.Is(err, ledger.ErrNoDataKey) {
		t.Fatalf("key of the destroyed version still stored: %v", err)
	}
	if _, ok := h.keys.Get(k2); !ok {
		t.Fatal("destroy took the other version's key")
	}
	r := h.ok(opRead, "data/d", map[string]any{"version": "1"})
	if r.Status != 404 || r.Data["data"] != nil || r.Data["metadata"].(map[string]any)["destroyed"] != true {
		t.Fatalf("read of a destroyed version: %+v", r)
	}
	if v := h.ok(opRead, "metadata/d", nil).Data["versions"].(map[string]any)["1"].(map[string]any); v["destroyed"] != true {
		t.Fatalf("metadata: %v", v)
	}
	// Destroyed versions cannot be undeleted, deleted or destroyed again.
	for _, ep := range []string{"undelete/d", "delete/d", "destroy/d"} {
		if r := h.ok(opUpdate, ep, body(`{"versions":[1]}`)); len(r.Events) != 0 {
			t.Fatalf("%s of a destroyed version decided events", ep)
		}
	}
	if r := h.ok(opRead, "data/d", nil); r.Data["data"].(map[string]any)["v"] != "two" {
		t.Fatal("latest version lost")
	}
	// Destroying the latest: a read of the path is a 404 with destroyed metadata.
	h.ok(opUpdate, "destroy/d", body(`{"versions":"2"}`))
	if r := h.ok(opRead, "data/d", nil); r.Status != 404 || r.Data["metadata"].(map[string]any)["destroyed"] != true {
		t.Fatalf("read after destroying the latest: %+v", r)
	}
}

func TestMaxVersionsTrimsAndShreds(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opUpdate, "config", body(`{"max_versions":3}`))
	var keyIDs []string
	for i := range 5 {
		h.ok(opCreate, "data/t", map[string]any{"data": map[string]any{"i": float64(i + 1)}})
		s, _ := h.view.Secret(h.mount.UUID, "t")
		keyIDs = append(keyIDs, s.Versions[uint64(i+1)].KeyID)
	}
	md := h.ok(opRead, "metadata/t", nil).Data
	if md["current_version"] != uint64(5) || md["oldest_version"] != uint64(3) || len(md["versions"].(map[string]any)) != 3 {
		t.Fatalf("metadata after trimming: current %v oldest %v versions %v", md["current_version"], md["oldest_version"], md["versions"])
	}
	for i, id := range keyIDs {
		_, ok := h.keys.Get(id)
		if trimmed := i < 2; ok == trimmed {
			t.Fatalf("version %d: key present=%v, trimmed=%v", i+1, ok, trimmed)
		}
	}
	h.fails(opRead, "data/t", map[string]any{"version": "1"}, engines.ErrNotFound, "")

	// The path's own max_versions wins over the mount's; lowering it trims on the next write.
	h.ok(opUpdate, "metadata/t", body(`{"max_versions":1}`))
	h.ok(opCreate, "data/t", body(`{"data":{"i":6}}`))
	s, _ := h.view.Secret(h.mount.UUID, "t")
	if len(s.Versions) != 1 || s.OldestVersion != 6 {
		t.Fatalf("versions %v oldest %d", len(s.Versions), s.OldestVersion)
	}
	for _, id := range keyIDs {
		if _, ok := h.keys.Get(id); ok {
			t.Fatal("a trimmed version's key survived")
		}
	}

	// Default of 10 when nothing is set; oldest_version follows Vault (0 until the first trim).
	h2 := newHarness(t, "2")
	for i := range 11 {
		h2.ok(opCreate, "data/d", map[string]any{"data": map[string]any{"i": float64(i)}})
		md := h2.ok(opRead, "metadata/d", nil).Data
		wantOldest := map[int]uint64{8: 0, 9: 1, 10: 2}[i]
		if i >= 8 && md["oldest_version"] != wantOldest {
			t.Fatalf("after %d writes oldest_version %v, want %d", i+1, md["oldest_version"], wantOldest)
		}
	}
	if s, _ := h2.view.Secret(h2.mount.UUID, "d"); len(s.Versions) != 10 {
		t.Fatalf("kept %d versions, want 10", len(s.Versions))
	}
}

func TestDeleteVersionAfter(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opUpdate, "config", body(`{"delete_version_after":"1h"}`))
	if got := h.ok(opRead, "config", nil).Data["delete_version_after"]; got != "1h0m0s" {
		t.Fatalf("config dva %v", got)
	}
	resp := h.ok(opCreate, "data/e", body(`{"data":{"v":1}}`))
	created := h.now
	if resp.Data["deletion_time"] != tsAt(created.Add(time.Hour)) {
		t.Fatalf("write deletion_time %v", resp.Data["deletion_time"])
	}
	// Readable until the deletion time has passed, then a 404 — decided at read time.
	if r := h.ok(opRead, "data/e", nil); r.Status != 0 {
		t.Fatal("not readable before its deletion time")
	}
	h.now = created.Add(time.Hour + time.Second)
	if r := h.ok(opRead, "data/e", nil); r.Status != 404 {
		t.Fatal("readable after its deletion time")
	}
	// Undelete reschedules from now.
	h.ok(opUpdate, "undelete/e", body(`{"versions":[1]}`))
	undeletedAt := h.now
	r := h.ok(opRead, "data/e", nil)
	if r.Status != 0 || r.Data["metadata"].(map[string]any)["deletion_time"] != tsAt(undeletedAt.Add(time.Hour)) {
		t.Fatalf("after undelete: %d %v", r.Status, r.Data["metadata"])
	}
	// The smaller of mount and path wins.
	h.ok(opUpdate, "metadata/e", body(`{"delete_version_after":"30m"}`))
	resp = h.ok(opCreate, "data/e", body(`{"data":{"v":2}}`))
	if resp.Data["deletion_time"] != tsAt(h.now.Add(30*time.Minute)) {
		t.Fatalf("path dva not used: %v", resp.Data["deletion_time"])
	}
	if got := h.ok(opRead, "metadata/e", nil).Data["delete_version_after"]; got != "30m0s" {
		t.Fatalf("metadata dva %v", got)
	}
	// A negative mount setting disables it everywhere.
	h.ok(opUpdate, "config", body(`{"delete_version_after":"-1"}`))
	if got := h.ok(opRead, "config", nil).Data["delete_version_after"]; got != "-1s" {
		t.Fatalf("disabled dva reads %v", got)
	}
	if resp := h.ok(opCreate, "data/e", body(`{"data":{"v":3}}`)); resp.Data["deletion_time"] != "" {
		t.Fatalf("deletion_time %v with dva disabled", resp.Data["deletion_time"])
	}
	h.ok(opUpdate, "config", body(`{"delete_version_after":0}`))
	if got := h.ok(opRead, "config", nil).Data["delete_version_after"]; got != "0s" {
		t.Fatalf("cleared dva reads %v", got)
	}
}

func TestSubkeys(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/sk", body(`{"data":{"foo":"abc","bar":{"baz":"def","qux":{"deep":1}},"empty":{},"list":[1,2]}}`))
	h.ok(opCreate, "data/sk", body(`{"data":{"only":"v2"}}`))
	tests := []struct {
		name  string
		query map[string]any
		want  string
	}{
		{"latest", nil, `{"only":null}`},
		{"version 1", map[string]any{"version": "1"}, `{"bar":{"baz":null,"qux":{"deep":null}},"empty":null,"foo":null,"list":null}`},
		{"depth 1", map[string]any{"version": "1", "depth": "1"}, `{"bar":null,"empty":null,"foo":null,"list":null}`},
		{"depth 2", map[string]any{"version": "1", "depth": "2"}, `{"bar":{"baz":null,"qux":null},"empty":null,"foo":null,"list":null}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.ok(opRead, "subkeys/sk", tc.query)
			b, _ := json.Marshal(r.Data["subkeys"])
			if string(b) != tc.want {
				t.Fatalf("got %s, want %s", b, tc.want)
			}
			if r.Data["metadata"].(map[string]any)["deletion_time"] != "" {
				t.Fatal("metadata missing")
			}
			if strings.Contains(wire(t, r), "abc") || strings.Contains(wire(t, r), "def") {
				t.Fatal("subkeys leaks a value")
			}
		})
	}
	h.fails(opRead, "subkeys/sk", map[string]any{"depth": "-1"}, engines.ErrBadRequest, `field "depth": must not be negative`)
	h.fails(opRead, "subkeys/missing", nil, engines.ErrNotFound, "")
	h.fails(opRead, "subkeys/sk", map[string]any{"version": "9"}, engines.ErrNotFound, "")
	h.ok(opDelete, "data/sk", nil)
	if r := h.ok(opRead, "subkeys/sk", nil); r.Status != 404 || r.Data["subkeys"] != nil {
		t.Fatalf("subkeys of a deleted version: %+v", r)
	}
}
