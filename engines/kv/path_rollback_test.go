package kv

import (
	"bytes"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

func TestRollback(t *testing.T) {
	h := newHarness(t, "2")
	h.ok(opCreate, "data/app/db", body(`{"data":{"pass":"one","port":5432}}`))
	h.ok(opUpdate, "data/app/db", body(`{"data":{"pass":"two"}}`))
	h.ok(opUpdate, "data/app/db", body(`{"data":{"pass":"three"}}`))

	resp := h.ok(opUpdate, "rollback/app/db", body(`{"version":1}`))
	if len(resp.Events) != 2 || resp.Events[0].Type != kvview.VersionWritten || resp.Events[1].Type != fpview.Recorded {
		t.Fatalf("rollback events %+v", resp.Events)
	}
	if bytes.Contains(resp.Events[0].Payload, []byte("one")) {
		t.Fatal("the rollback's event holds the value in the clear")
	}
	if v := resp.Data["version"]; v != uint64(4) {
		t.Fatalf("rollback answered version %v, want 4 (data %v)", v, resp.Data)
	}
	if _, leaked := resp.Data["data"]; leaked {
		t.Fatal("rollback answered with the value")
	}
	read := h.ok(opRead, "data/app/db", nil)
	if got := wire(t, read); !bytes.Contains([]byte(got), []byte(`"data":{"pass":"one","port":5432}`)) {
		t.Fatalf("after rollback, latest = %s", got)
	}
	s, _ := h.view.Secret(h.mount.UUID, "app/db")
	if s.Versions[4].KeyID == s.Versions[1].KeyID {
		t.Fatal("the new version shares version 1's data key: destroying one would destroy both")
	}

	h.ok(opUpdate, "destroy/app/db", body(`{"versions":[2]}`))
	h.ok(opUpdate, "delete/app/db", body(`{"versions":[3]}`))
	tests := []struct {
		name string
		data string
		kind error
		msg  string
	}{
		{"destroyed", `{"version":2}`, engines.ErrBadRequest, "cannot roll back to version 2: it has been destroyed"},
		{"deleted", `{"version":3}`, engines.ErrBadRequest, "cannot roll back to version 3: it has been deleted (undelete it first)"},
		{"never written", `{"version":9}`, engines.ErrBadRequest, "cannot roll back to version 9: it does not exist (the current version is 4)"},
		{"no version", `{}`, engines.ErrBadRequest, "field \"version\": the version to roll back to is required, a number of 1 or more"},
		{"version not a number", `{"version":"x"}`, engines.ErrBadRequest, "field \"version\": expected an integer"},
		{"stale cas", `{"version":1,"cas":3}`, engines.ErrBadRequest, "check-and-set parameter did not match the current version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h.fails(opUpdate, "rollback/app/db", body(tt.data), tt.kind, tt.msg)
		})
	}
	h.fails(opUpdate, "rollback/app/none", body(`{"version":1}`), engines.ErrNotFound, `no secret at "app/none"`)
	h.fails(opRead, "rollback/app/db", nil, engines.ErrUnsupported, "")
	if s, _ := h.view.Secret(h.mount.UUID, "app/db"); s.CurrentVersion != 4 {
		t.Fatalf("a refused rollback wrote: current version %d", s.CurrentVersion)
	}

	// A matching cas is accepted; the copy counts toward max_versions like any write.
	h.ok(opUpdate, "metadata/app/db", body(`{"max_versions":2}`))
	resp = h.ok(opUpdate, "rollback/app/db", body(`{"version":4,"cas":4,"bogus":1}`))
	if resp.Data["version"] != uint64(5) || len(resp.Warnings) != 1 {
		t.Fatalf("rollback with cas: data %v warnings %v", resp.Data, resp.Warnings)
	}
	s, _ = h.view.Secret(h.mount.UUID, "app/db")
	if _, kept := s.Versions[3]; kept || s.OldestVersion != 4 {
		t.Fatalf("max_versions not applied to the rollback: oldest %d, versions %v", s.OldestVersion, s.Versions)
	}
	h.fails(opUpdate, "rollback/app/db", body(`{"version":1}`), engines.ErrBadRequest,
		"cannot roll back to version 1: it no longer exists (max_versions removed it; the oldest version kept is 4)")
}

// Rollback is a write: the existence check calls it an update (so "update" on rollback/<path>
// is what a policy must grant), and it is serialised with the path's other writes.
func TestRollbackIsAnUpdateOfThePath(t *testing.T) {
	h := newHarness(t, "2")
	req := h.req(opUpdate, "rollback/app/db", body(`{"version":1}`))
	if ok, err := h.b.Exists(t.Context(), req); err != nil || !ok {
		t.Fatalf("Exists = %v, %v; want true (an update)", ok, err)
	}
	if key := h.b.LockKey(req); key != h.b.LockKey(h.req(opUpdate, "data/app/db", nil)) {
		t.Fatalf("lock key %q differs from the data path's", key)
	}
}
