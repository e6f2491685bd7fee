package kv

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

func TestImportKeepsVersionsTimesAndStates(t *testing.T) {
	h := newHarness(t, "2")
	c3 := epoch.Add(-48 * time.Hour).Format(time.RFC3339Nano)
	c4 := epoch.Add(-24 * time.Hour).Format(time.RFC3339Nano)
	c5 := epoch.Add(-time.Hour).Format(time.RFC3339Nano)
	del := epoch.Add(-30 * time.Minute).Format(time.RFC3339Nano)
	// The source kept versions 3..5 (1 and 2 were trimmed there): 3 destroyed, 4 deleted (its
	// value unreadable at the source), 5 live.
	resp := h.ok(opUpdate, "import/app/db", body(`{"version":3,"oldest_version":3,"destroyed":true,"created_time":"`+c3+`"}`))
	if len(resp.Events) != 2 || resp.Events[1].Type != kvview.VersionsDestroyed {
		t.Fatalf("a destroyed version: events %+v", resp.Events)
	}
	h.ok(opUpdate, "import/app/db", body(`{"version":4,"deletion_time":"`+del+`","created_time":"`+c4+`"}`))
	resp = h.ok(opUpdate, "import/app/db", body(`{"version":5,"created_time":"`+c5+`","data":{"pass":"five-secret"}}`))
	if bytes.Contains(resp.Events[0].Payload, []byte("five-secret")) {
		t.Fatal("the import's event holds the value in the clear")
	}
	// Its value is fingerprinted as of the source's write, so a leak of it is matched.
	if len(resp.Events) != 2 || resp.Events[1].Type != fpview.Recorded || bytes.Contains(resp.Events[1].Payload, []byte("five-secret")) {
		t.Fatalf("an imported value: events %+v, want the version and its fingerprints", resp.Events)
	}
	var fp fpview.RecordedPayload
	if err := json.Unmarshal(resp.Events[1].Payload, &fp); err != nil {
		t.Fatal(err)
	}
	if fp.Version != 5 || fp.Path != "app/db" || fp.Time.Format(time.RFC3339Nano) != c5 || fp.Fields["pass"] != h.keyring.Fingerprint([]byte("five-secret")) {
		t.Fatalf("imported value's fingerprints: %+v", fp)
	}

	s, _ := h.view.Secret(h.mount.UUID, "app/db")
	if s.CurrentVersion != 5 || s.OldestVersion != 3 || len(s.Versions) != 3 {
		t.Fatalf("after import: current %d oldest %d versions %v", s.CurrentVersion, s.OldestVersion, s.Versions)
	}
	if !s.Versions[3].Destroyed || !s.Versions[4].Deleted(h.now) || s.Versions[4].HasValue() || !s.Versions[5].HasValue() {
		t.Fatalf("states: %+v", s.Versions)
	}
	if got := s.Versions[5].Created.Format(time.RFC3339Nano); got != c5 {
		t.Fatalf("version 5 created %s, want the source's %s", got, c5)
	}
	if got := s.Created.Format(time.RFC3339Nano); got != c3 {
		t.Fatalf("secret created %s, want the first imported version's %s", got, c3)
	}
	if got := wire(t, h.ok(opRead, "data/app/db", nil)); !bytes.Contains([]byte(got), []byte(`"pass":"five-secret"`)) {
		t.Fatalf("read after import: %s", got)
	}
	// The deleted version, undeleted here, still has no value: a 404, never a 500.
	h.ok(opUpdate, "undelete/app/db", body(`{"versions":[4]}`))
	if resp := h.ok(opRead, "data/app/db", body(`{"version":4}`)); resp.Status != 404 {
		t.Fatalf("reading a version imported without value: status %d", resp.Status)
	}
	if err := h.fails(opUpdate, "rollback/app/db", body(`{"version":4}`), engines.ErrBadRequest, ""); !strings.Contains(err.Error(), "imported without its value") {
		t.Fatalf("rollback to a version without value: %v", err)
	}

	// A normal write continues the numbering.
	if resp := h.ok(opUpdate, "data/app/db", body(`{"data":{"pass":"six"}}`)); resp.Data["version"] != uint64(6) {
		t.Fatalf("write after import: %v", resp.Data)
	}
}

func TestImportBadInput(t *testing.T) {
	h := newHarness(t, "2")
	now := epoch.Add(-time.Hour).Format(time.RFC3339Nano)
	h.ok(opUpdate, "import/a", body(`{"version":2,"created_time":"`+now+`","data":{"k":"v"}}`))
	for _, tc := range []struct {
		name, path, body, msg string
	}{
		{"again", "import/a", `{"version":2,"created_time":"` + now + `","data":{"k":"v"}}`, "already here"},
		{"older", "import/a", `{"version":1,"created_time":"` + now + `","data":{"k":"v"}}`, "already here"},
		{"no version", "import/b", `{"created_time":"` + now + `","data":{"k":"v"}}`, "version"},
		{"no time", "import/b", `{"version":1,"data":{"k":"v"}}`, "created_time"},
		{"bad time", "import/b", `{"version":1,"created_time":"yesterday","data":{"k":"v"}}`, "RFC 3339"},
		{"future", "import/b", `{"version":1,"created_time":"2999-01-01T00:00:00Z","data":{"k":"v"}}`, "future"},
		{"no data", "import/b", `{"version":1,"created_time":"` + now + `"}`, "no data"},
		{"destroyed with data", "import/b", `{"version":1,"destroyed":true,"created_time":"` + now + `","data":{"k":"v"}}`, "destroyed"},
		{"oldest past version", "import/b", `{"version":1,"oldest_version":3,"created_time":"` + now + `","data":{"k":"v"}}`, "oldest_version"},
		{"no path", "import/", `{"version":1,"created_time":"` + now + `","data":{"k":"v"}}`, "missing path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := h.fails(opUpdate, tc.path, body(tc.body), engines.ErrBadRequest, ""); !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %q does not say %q", err, tc.msg)
			}
		})
	}
	if _, ok := h.view.Secret(h.mount.UUID, "b"); ok {
		t.Fatal("a refused import left a secret behind")
	}
	if got := h.b.Sudo(); len(got) != 1 || got[0] != "import/*" {
		t.Fatalf("Sudo() = %v: import must need sudo", got)
	}
}

func TestImportManyVersionsInOneRequest(t *testing.T) {
	h := newHarness(t, "2")
	c := epoch.Add(-time.Hour).Format(time.RFC3339Nano)
	// Out of order: refused whole, nothing written.
	if err := h.fails(opUpdate, "import/x", body(`{"versions":[{"version":2,"created_time":"`+c+`","data":{"a":"2"}},{"version":1,"created_time":"`+c+`","data":{"a":"1"}}]}`), engines.ErrBadRequest, ""); !strings.Contains(err.Error(), "in order") {
		t.Fatalf("out of order: %v", err)
	}
	if _, ok := h.view.Secret(h.mount.UUID, "x"); ok {
		t.Fatal("a refused batch left versions behind")
	}
	h.fails(opUpdate, "import/x", body(`{"versions":[]}`), engines.ErrBadRequest, "")
	h.fails(opUpdate, "import/x", body(`{"versions":["v1"]}`), engines.ErrBadRequest, "")
	resp := h.ok(opUpdate, "import/x", body(`{"oldest_version":2,"versions":[
		{"version":2,"created_time":"`+c+`","destroyed":true},
		{"version":3,"created_time":"`+c+`","data":{"a":"3"}},
		{"version":4,"created_time":"`+c+`","data":{"a":"4"}}]}`))
	if len(resp.Events) != 6 {
		t.Fatalf("events: %d, want 6 (3 written, 2 values fingerprinted, 1 destroyed)", len(resp.Events))
	}
	s, _ := h.view.Secret(h.mount.UUID, "x")
	if s.CurrentVersion != 4 || s.OldestVersion != 2 || !s.Versions[2].Destroyed || !s.Versions[3].HasValue() {
		t.Fatalf("after batch: %+v", s)
	}
}
