package kv

import (
	"bytes"
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
	"github.com/ledger-secrets/ledger/projections/mount"
)

func TestBadInputs(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/exists", body(`{"data":{"a":1}}`))
	tests := []struct {
		name string
		op   engines.Operation
		path string
		body string
		kind error
		msg  string
	}{
		{"data not an object", opCreate, "data/x", `{"data":"str"}`, engines.ErrBadRequest, `field "data": expected an object`},
		{"data a list", opCreate, "data/x", `{"data":[1,2]}`, engines.ErrBadRequest, `field "data": expected an object`},
		{"no data", opCreate, "data/x", `{"options":{"cas":0}}`, engines.ErrBadRequest, "no data provided"},
		{"null data", opCreate, "data/x", `{"data":null}`, engines.ErrBadRequest, "no data provided"},
		{"options not an object", opCreate, "data/x", `{"data":{},"options":"cas=1"}`, engines.ErrBadRequest, `field "options": expected an object`},
		{"empty path", opCreate, "data/", `{"data":{"a":1}}`, engines.ErrBadRequest, "missing path"},
		{"trailing slash", opCreate, "data/x/", `{"data":{"a":1}}`, engines.ErrBadRequest, `invalid path "x/": a secret path cannot end with "/"`},
		{"empty path read", opRead, "data/", `{}`, engines.ErrBadRequest, "missing path"},
		{"empty metadata path", opUpdate, "metadata/", `{"max_versions":1}`, engines.ErrBadRequest, "missing path"},
		{"no versions", opUpdate, "delete/exists", `{}`, engines.ErrBadRequest, "No version number provided"},
		{"no versions undelete", opUpdate, "undelete/exists", `{"versions":[]}`, engines.ErrBadRequest, "No version number provided"},
		{"no versions destroy", opUpdate, "destroy/exists", `{}`, engines.ErrBadRequest, "no version number provided"},
		{"versions not numbers", opUpdate, "destroy/exists", `{"versions":["one"]}`, engines.ErrBadRequest, `field "versions": expected a list of version numbers`},
		{"versions negative", opUpdate, "delete/exists", `{"versions":[-1]}`, engines.ErrBadRequest, `field "versions": expected a list of version numbers`},
		{"versions fraction", opUpdate, "delete/exists", `{"versions":[1.5]}`, engines.ErrBadRequest, `field "versions": expected a list of version numbers`},
		{"versions object", opUpdate, "delete/exists", `{"versions":{"a":1}}`, engines.ErrBadRequest, `field "versions": expected a list of version numbers`},
		{"read delete endpoint", opRead, "delete/exists", `{}`, engines.ErrUnsupported, "unsupported operation"},
		{"delete subkeys", opDelete, "subkeys/exists", `{}`, engines.ErrUnsupported, "unsupported operation"},
		{"patch config", opPatch, "config", `{}`, engines.ErrUnsupported, "unsupported operation"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h.fails(tc.op, tc.path, body(tc.body), tc.kind, tc.msg)
		})
	}
	if got := h.view.List(h.mount.UUID, ""); !reflect.DeepEqual(got, []string{"exists"}) {
		t.Fatalf("a refused request wrote something: %v", got)
	}
}

func TestInvalidPathsAnswer404WithWarning(t *testing.T) {
	h := newHarness(t, "2")
	tests := []struct {
		op      engines.Operation
		path    string
		warning string
	}{
		{opRead, "foo", "use 'vault kv get' for this operation"},
		{opCreate, "foo/bar", "use 'vault kv put' for this operation"},
		{opList, "foo/", "use 'vault kv list' for this operation"},
		{opRead, "data", "Non-listing operations on the root of a K/V v2 mount are not supported."},
		{opUpdate, "destroy", "Non-listing operations on the root of a K/V v2 mount are not supported."},
	}
	for _, tc := range tests {
		resp := h.ok(tc.op, tc.path, nil)
		if resp.Status != 404 || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.warning) || len(resp.Events) != 0 {
			t.Fatalf("%s %s: %+v", tc.op, tc.path, resp)
		}
	}
}

// TestNoValueInErrors feeds a recognisable secret into every field that can be refused and
// checks that no error message repeats it.
func TestNoValueInErrors(t *testing.T) {
	const canary = "S3CRET-CANARY-VALUE"
	for _, version := range []string{"1", "2"} {
		t.Run("v"+version, func(t *testing.T) {
			h := newHarness(t, version)
			var reqs []struct {
				op   engines.Operation
				path string
				data map[string]any
			}
			add := func(op engines.Operation, path string, data map[string]any) {
				reqs = append(reqs, struct {
					op   engines.Operation
					path string
					data map[string]any
				}{op, path, data})
			}
			if version == "2" {
				add(opCreate, "data/x", map[string]any{"data": canary})
				add(opCreate, "data/x", map[string]any{"data": []any{canary}})
				add(opCreate, "data/x", map[string]any{"data": map[string]any{"a": canary}, "options": canary})
				add(opCreate, "data/x", map[string]any{"data": map[string]any{"a": canary}, "options": map[string]any{"cas": canary}})
				add(opCreate, "data/x", map[string]any{"data": map[string]any{"a": canary}, "options": map[string]any{"cas": 5}})
				add(opCreate, "data/x", map[string]any{"data": map[string]any{"a": func() {}}}) // not encodable
				add(opPatch, "data/x", map[string]any{"data": map[string]any{"a": canary}})
				add(opUpdate, "metadata/x", map[string]any{"max_versions": canary})
				add(opUpdate, "metadata/x", map[string]any{"cas_required": canary})
				add(opUpdate, "metadata/x", map[string]any{"delete_version_after": canary})
				add(opUpdate, "metadata/x", map[string]any{"custom_metadata": canary})
				add(opUpdate, "metadata/x", map[string]any{"custom_metadata": map[string]any{"k": canary + "\x00"}})
				add(opUpdate, "metadata/x", map[string]any{"custom_metadata": map[string]any{"k": strings.Repeat(canary, 40)}})
				add(opUpdate, "metadata/x", map[string]any{"custom_metadata": map[string]any{"k": []any{canary}}})
				add(opUpdate, "destroy/x", map[string]any{"versions": canary})
				add(opUpdate, "delete/x", map[string]any{"versions": []any{canary}})
				add(opRead, "data/x", map[string]any{"version": canary})
				add(opRead, "subkeys/x", map[string]any{"depth": canary})
				add(opUpdate, "config", map[string]any{"max_versions": canary})
				add(opUpdate, "config", map[string]any{"delete_version_after": canary})
			} else {
				add(opCreate, "x/", map[string]any{"k": canary})
				add(opCreate, "x", map[string]any{"k": func() {}})
			}
			for _, r := range reqs {
				_, err := h.do(r.op, r.path, r.data)
				if err == nil {
					t.Fatalf("%s %s %v: accepted", r.op, r.path, r.data)
				}
				if strings.Contains(err.Error(), canary) {
					t.Fatalf("%s %s: error repeats the value: %q", r.op, r.path, err)
				}
			}
		})
	}
}

func TestExistsAndLockKey(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/app/db", body(`{"data":{"a":1}}`))
	ctx := context.Background()
	tests := []struct {
		path   string
		exists bool
		lock   string
	}{
		{"data/app/db", true, "app/db"},
		{"data/app/new", false, "app/new"},
		{"metadata/app/db", true, "app/db"},
		{"metadata/app/new", false, "app/new"},
		{"delete/app/db", true, "app/db"},
		{"destroy/app/new", true, "app/new"},
		{"config", true, "\x00config"},
	}
	for _, tc := range tests {
		req := h.req(opUpdate, tc.path, nil)
		if ok, err := h.b.Exists(ctx, req); err != nil || ok != tc.exists {
			t.Fatalf("Exists(%s) = %v, %v", tc.path, ok, err)
		}
		if got := h.b.LockKey(req); got != tc.lock {
			t.Fatalf("LockKey(%s) = %q", tc.path, got)
		}
	}
	v1 := newHarness(t, "1")
	v1.ok(opCreate, "a/b", map[string]any{"k": "v"})
	for path, want := range map[string]bool{"a/b": true, "a/c": false} {
		req := v1.req(opUpdate, path, nil)
		if ok, _ := v1.b.Exists(ctx, req); ok != want || v1.b.LockKey(req) != path {
			t.Fatalf("v1 %s: exists %v lock %q", path, ok, v1.b.LockKey(req))
		}
	}
}

func TestV1(t *testing.T) {
	h := newHarness(t, "1")
	if h.b.v2 {
		t.Fatal("version 1 mount built as v2")
	}
	resp := h.ok(opCreate, "team/db", body(`{"user":"admin","ttl":"1h","n":3}`))
	if resp.Data != nil || len(resp.Events) != 2 || resp.Events[1].Type != fpview.Recorded || strings.Contains(string(resp.Events[1].Payload), "admin") {
		t.Fatalf("v1 write answered %+v", resp)
	}
	r := h.ok(opRead, "team/db", nil)
	if got := wire(t, r); got != `{"n":3,"ttl":"1h","user":"admin"}` {
		t.Fatalf("v1 read %s", got)
	}
	if r.Secret == nil || r.Secret.LeaseDuration != time.Hour || r.Secret.LeaseID != "" || r.Secret.Renewable {
		t.Fatalf("v1 secret %+v", r.Secret)
	}
	s, _ := h.view.Value(h.mount.UUID, "team/db")
	oldKey := s.KeyID

	// A write replaces the whole map, and the replaced value's key is shredded.
	h.ok(opUpdate, "team/db", body(`{"user":"other"}`))
	r = h.ok(opRead, "team/db", nil)
	if got := wire(t, r); got != `{"user":"other"}` || r.Secret.LeaseDuration != 768*time.Hour {
		t.Fatalf("v1 after overwrite %s, lease %v", got, r.Secret.LeaseDuration)
	}
	if _, err := h.keys.Fetch(context.Background(), h.keyring, oldKey); !errors.Is(err, ledger.ErrNoDataKey) {
		t.Fatalf("replaced value's key: %v", err)
	}

	h.ok(opCreate, "team/api", body(`{"k":"v"}`))
	h.ok(opCreate, "top", body(`{"k":"v"}`))
	if got := h.ok(opList, "", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"team/", "top"}) {
		t.Fatalf("list root %v", got)
	}
	if got := h.ok(opList, "team", nil).Data["keys"]; !reflect.DeepEqual(got, []string{"api", "db"}) {
		t.Fatalf("list team %v", got)
	}

	s, _ = h.view.Value(h.mount.UUID, "team/db")
	h.ok(opDelete, "team/db", nil)
	h.fails(opRead, "team/db", nil, engines.ErrNotFound, "")
	if _, ok := h.keys.Get(s.KeyID); ok {
		t.Fatal("deleted value's key survived")
	}
	if r := h.ok(opDelete, "team/db", nil); len(r.Events) != 0 {
		t.Fatal("delete of a missing path decided events")
	}
	h.fails(opCreate, "team/x", map[string]any{}, engines.ErrBadRequest, "missing data fields")
	h.fails(opCreate, "", map[string]any{"a": "b"}, engines.ErrBadRequest, "missing path")
	h.fails(opList, "nothing/", nil, engines.ErrNotFound, "")
	h.fails(opPatch, "team/api", map[string]any{"a": "b"}, engines.ErrUnsupported, "unsupported operation")
	// "data/..." is just a path on a v1 mount.
	h.ok(opCreate, "data/x", map[string]any{"a": "b"})
	if r := h.ok(opRead, "data/x", nil); r.Data["a"] != "b" {
		t.Fatal("v1 path data/x")
	}
}

// TestDestroyLeavesNothingOnDisk is the destroy guarantee end to end: after destroy, the value's
// plaintext, its data key and the sealed key are in no file of the data directory, nor in the
// view's snapshot — though the log still holds the (now undecryptable) ciphertext and the record
// of the destruction — and a rebuild from the log after a restart still works.
func TestDestroyLeavesNothingOnDisk(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, "2")
	const canary = "PLAINTEXT-CANARY-4f1c9b"
	h.ok(opCreate, "data/app/db", body(`{"data":{"password":"`+canary+`"}}`))
	h.ok(opCreate, "data/app/db", body(`{"data":{"password":"still-here"}}`))

	s, _ := h.view.Secret(h.mount.UUID, "app/db")
	v1 := s.Versions[1]
	key, ok := h.keys.Get(v1.KeyID)
	if !ok {
		t.Fatal("control: no key for version 1")
	}
	// Controls: the key is recoverable from the streams before destroy, so the check below
	// can fail; the plaintext is never on disk (events are sealed too).
	if ok, err := h.keys.Recoverable(ctx, h.keyring, v1.KeyID); err != nil || !ok {
		t.Fatalf("control: data key not recoverable before destroy: %v", err)
	}
	if hits := filesContaining(t, h.dir, []byte(canary)); len(hits) != 0 {
		t.Fatalf("plaintext on disk before destroy: %v", hits)
	}
	snap, _ := h.view.Snapshot()
	if !bytes.Contains(snap, []byte(v1.KeyID)) {
		t.Fatal("control: key id not in the view snapshot")
	}
	pt, err := h.b.open(ctx, v1.KeyID, v1.Sealed, valueAD(h.mount.UUID, "app/db", 1))
	if err != nil || !strings.Contains(string(pt), canary) {
		t.Fatalf("control: version 1 does not open: %v", err)
	}

	h.ok(opUpdate, "destroy/app/db", body(`{"versions":[1]}`))

	if ok, err := h.keys.Recoverable(ctx, h.keyring, v1.KeyID); err != nil || ok {
		t.Fatalf("destroyed version's data key recoverable from the streams: %v", err)
	}
	for what, needle := range map[string][]byte{"plaintext": []byte(canary), "data key": key} {
		if hits := filesContaining(t, h.dir, needle); len(hits) != 0 {
			t.Fatalf("%s still on disk after destroy: %v", what, hits)
		}
	}
	snap, _ = h.view.Snapshot()
	for what, needle := range map[string][]byte{"key id": []byte(v1.KeyID), "plaintext": []byte(canary), "data key": key} {
		if bytes.Contains(snap, needle) {
			t.Fatalf("view snapshot holds the %s of the destroyed version", what)
		}
	}
	if _, err := h.b.open(ctx, v1.KeyID, v1.Sealed, valueAD(h.mount.UUID, "app/db", 1)); !errors.Is(err, ErrValueGone) {
		t.Fatalf("destroyed ciphertext still opens: %v", err)
	}

	// The log still records the write (with its ciphertext) and the destruction.
	types := map[string]int{}
	var loggedSealed []byte
	err = h.log.ReadRange(ctx, 1, 0, false, func(b ledger.Batch) error {
		for i, se := range b.Events {
			r, err := se.Open(h.keyring, ledger.Position{Seq: b.Seq, Index: uint32(i)})
			if err != nil {
				return err
			}
			types[r.Type]++
			if r.Type == "kv.version.written.v1" && loggedSealed == nil {
				var p struct {
					Sealed []byte `json:"sealed"`
				}
				if err := json.Unmarshal(r.Payload, &p); err != nil {
					return err
				}
				loggedSealed = p.Sealed
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if types["kv.version.written.v1"] != 2 || types["kv.versions.destroyed.v1"] != 1 {
		t.Fatalf("log holds %v", types)
	}
	if !bytes.Equal(loggedSealed, v1.Sealed) {
		t.Fatal("the log does not carry version 1's ciphertext")
	}

	// Restart and rebuild from the log: the destroyed version stays destroyed, the rest reads.
	h.restart()
	r := h.ok(opRead, "data/app/db", map[string]any{"version": "1"})
	if r.Status != 404 || r.Data["metadata"].(map[string]any)["destroyed"] != true {
		t.Fatalf("after restart version 1: %+v", r)
	}
	if r := h.ok(opRead, "data/app/db", nil); r.Data["data"].(map[string]any)["password"] != "still-here" {
		t.Fatal("after restart version 2 unreadable")
	}
	if ok, err := h.keys.Recoverable(ctx, h.keyring, v1.KeyID); err != nil || ok {
		t.Fatalf("destroyed version's data key recoverable after restart: %v", err)
	}
	for what, needle := range map[string][]byte{"plaintext": []byte(canary), "data key": key} {
		if hits := filesContaining(t, h.dir, needle); len(hits) != 0 {
			t.Fatalf("%s on disk after restart: %v", what, hits)
		}
	}
}

// TestTrimLeavesNothingOnDisk: the same guarantee for versions pushed out by max_versions.
func TestTrimLeavesNothingOnDisk(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opUpdate, "metadata/t", body(`{"max_versions":1}`))
	h.ok(opCreate, "data/t", body(`{"data":{"v":"first"}}`))
	s, _ := h.view.Secret(h.mount.UUID, "t")
	id := s.Versions[1].KeyID
	ctx := context.Background()
	if ok, err := h.keys.Recoverable(ctx, h.keyring, id); err != nil || !ok {
		t.Fatalf("control: data key not recoverable before the trim: %v", err)
	}
	start := time.Now()
	h.ok(opCreate, "data/t", body(`{"data":{"v":"second"}}`))
	if _, ok := h.keys.Get(id); ok {
		t.Fatal("trimmed version's key still in memory after the write")
	}
	// A trim is erased from disk within ledger.ShredDeadline (plus the erase, on a loaded
	// machine), not before the write is answered.
	for {
		ok, err := h.keys.Recoverable(ctx, h.keyring, id)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Since(start) > ledger.ShredDeadline+10*time.Second {
			t.Fatalf("trimmed version's key recoverable %v after the write", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if snap, _ := h.view.Snapshot(); bytes.Contains(snap, []byte(s.Versions[1].KeyID)) {
		t.Fatal("trimmed version in the snapshot")
	}
}

func TestMountDisabledDropsAndShreds(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, "2")
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v"}}`))
	h.ok(opCreate, "data/b/c", body(`{"data":{"k":"v"}}`))
	ids := h.view.KeyIDs(h.mount.UUID)

	// Another mount's key must survive.
	other := New(h.view, h.keys, h.keyring, engines.Mount{UUID: "other-mount", Options: map[string]string{"version": "2"}})
	otherID, _, err := other.seal(ctx, []byte(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}

	b, _ := json.Marshal(mount.DisabledPayload{Path: "secret/", UUID: h.mount.UUID})
	pos, err := h.log.Append(ctx, []ledger.Event{{Type: mount.Disabled, Subject: "mount.x", Payload: b}})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.runner.WaitFor(ctx, pos[0].Seq); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.view.Secret(h.mount.UUID, "a"); ok || h.view.List(h.mount.UUID, "") != nil {
		t.Fatal("view kept the disabled mount")
	}
	n, err := ShredMount(ctx, h.keys, h.mount.UUID)
	if err != nil || n != len(ids) {
		t.Fatalf("ShredMount = %d, %v; want %d", n, err, len(ids))
	}
	for _, id := range ids {
		if _, err := h.keys.Fetch(ctx, h.keyring, id); !errors.Is(err, ledger.ErrNoDataKey) {
			t.Fatalf("key %s survived: %v", id, err)
		}
	}
	if _, ok := h.keys.Get(otherID); !ok {
		t.Fatal("ShredMount took another mount's key")
	}
}

func TestReconcile(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, "2")
	h.ok(opCreate, "data/live", body(`{"data":{"k":"v"}}`))
	live := h.view.KeyIDs("")
	// An orphan: the key was stored, the event never landed.
	orphan, _, err := h.b.seal(ctx, []byte(`{"k":"lost"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Too young to judge: a write may still be in flight.
	if n, err := Reconcile(ctx, h.view, h.keys, time.Now().Add(-time.Minute)); err != nil || n != 0 {
		t.Fatalf("Reconcile with a grace period took %d keys: %v", n, err)
	}
	n, err := Reconcile(ctx, h.view, h.keys, time.Now().Add(time.Second))
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1", n, err)
	}
	if _, ok := h.keys.Get(orphan); ok {
		t.Fatal("orphan key survived")
	}
	for _, id := range live {
		if _, ok := h.keys.Get(id); !ok {
			t.Fatal("Reconcile took a live key")
		}
	}
	if r := h.ok(opRead, "data/live", nil); r.Data["data"].(map[string]any)["k"] != "v" {
		t.Fatal("live value unreadable after Reconcile")
	}
}

func TestShredHookSkipsOtherEvents(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v"}}`))
	id := h.view.KeyIDs("")[0]
	// Only KV event types are read; a foreign event naming a key in a "shred" field is ignored.
	err := h.b.Shred(context.Background(), []ledger.Event{{Type: "other.thing.v1", Payload: []byte(`{"shred":["` + id + `"]}`)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := h.keys.Get(id); !ok {
		t.Fatal("a foreign event shredded a key")
	}
	if err := h.b.Shred(context.Background(), []ledger.Event{{Type: "kv.versions.destroyed.v1", Payload: []byte("{bad")}}); err == nil {
		t.Fatal("undecodable event accepted")
	}
}

func TestValueBoundToMountPathVersion(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, "2")
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v"}}`))
	s, _ := h.view.Secret(h.mount.UUID, "a")
	v := s.Versions[1]
	for name, ad := range map[string][]byte{
		"other path":    valueAD(h.mount.UUID, "b", 1),
		"other version": valueAD(h.mount.UUID, "a", 2),
		"other mount":   valueAD("m2", "a", 1),
	} {
		if _, err := h.b.open(ctx, v.KeyID, v.Sealed, ad); !errors.Is(err, ledger.ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := h.b.open(ctx, v.KeyID, v.Sealed, valueAD(h.mount.UUID, "a", 1)); err != nil {
		t.Fatal(err)
	}
}

func TestOtherNodeReadsViaFetch(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v"}}`))
	// A second node: its own DataKeys over the same stream, loaded now; the next write's key is
	// stored by the first node after that load, so the second finds it only through Fetch.
	keys2, err := ledger.OpenDataKeys(context.Background(), h.log.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer keys2.Close()
	if err := keys2.Load(context.Background(), h.keyring); err != nil {
		t.Fatal(err)
	}
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v2"}}`))
	node2 := New(h.view, keys2, h.keyring, h.mount)
	resp, err := node2.HandleRequest(context.Background(), h.req(opRead, "data/a", nil))
	if err != nil || resp.Data["data"].(map[string]any)["k"] != "v2" {
		t.Fatalf("node 2 read: %v %v", resp, err)
	}
}

// The shred hook never destroys a key the view still uses: called too early (before the view
// applied the event), it leaves the key for Reconcile instead of losing a live value.
func TestShredHookSparesLiveKeys(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t, "2")
	h.ok(opCreate, "data/a", body(`{"data":{"k":"v"}}`))
	resp, err := h.b.HandleRequest(ctx, h.req(opUpdate, "destroy/a", body(`{"versions":[1]}`)))
	if err != nil {
		t.Fatal(err)
	}
	id := h.view.KeyIDs("")[0]
	if err := h.b.Shred(ctx, resp.Events); err != nil { // not appended, not applied
		t.Fatal(err)
	}
	if _, ok := h.keys.Get(id); !ok {
		t.Fatal("the hook shredded the key of a version the view still serves")
	}
	if r := h.ok(opRead, "data/a", nil); r.Data["data"].(map[string]any)["k"] != "v" {
		t.Fatal("value lost")
	}
}
