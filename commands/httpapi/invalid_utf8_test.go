package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// A key written before paths had to be valid UTF-8 (the event appended directly, as old servers
// did through the edge) shows as a replay verify finding, %q-escaped; the README's repair —
// delete its metadata with U+FFFD spelled %EF%BF%BD — removes it, and verify is clean again.
func TestInvalidUTF8KeyFoundAndRepaired(t *testing.T) {
	ctx := context.Background()
	s := newSnapServer(t, true)
	root := s.Client(t, s.RootToken)
	if _, err := root.KVv2("secret").Put(ctx, "good", map[string]any{"x": "1"}); err != nil {
		t.Fatal(err)
	}
	mounts, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	uuid := mounts["secret/"].UUID
	bad := "x-\xff"
	// Old servers marshalled the raw path, which JSON turns into U+FFFD, while the value's
	// ciphertext stayed bound to the original bytes: a value that no longer decrypts.
	b, _ := json.Marshal(kvview.VersionWrittenPayload{Mount: uuid, Path: bad, Version: 1, Created: time.Now(),
		KeyID: "old-key", Sealed: []byte("not decryptable"), Oldest: 1})
	s.appendEvents(t, ledger.Event{Type: kvview.VersionWritten, Subject: ledger.SubjectFor("kv", uuid, bad), Payload: b})
	eventually(t, 5*time.Second, "bad key listed", func() bool {
		l, err := root.Logical().List("secret/metadata/")
		return err == nil && l != nil && strings.Contains(fmt.Sprint(l.Data["keys"]), "x-\ufffd")
	})

	d := verifyOK(t, root, "genesis")
	got := fmt.Sprint(d["invalid_utf8"])
	if !strings.Contains(got, "kv") || !strings.Contains(got, `"x-\ufffd"`) {
		t.Fatalf("verify findings %s do not name the kv key %q", got, "x-\ufffd")
	}
	if strings.Contains(got, "good") {
		t.Fatalf("verify flagged a valid key: %s", got)
	}

	// The edge refuses the raw bytes ...
	if _, err := root.Logical().Delete("secret/metadata/" + bad); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("delete with invalid UTF-8: %v, want 400", err)
	}
	// ... and accepts the stored spelling (the client escapes U+FFFD as %EF%BF%BD).
	if _, err := root.Logical().Delete("secret/metadata/x-\ufffd"); err != nil {
		t.Fatalf("repair as README says: %v", err)
	}
	d = verifyOK(t, root, "genesis")
	if f, ok := d["invalid_utf8"]; ok {
		t.Fatalf("verify still finds %v after the repair", f)
	}
	if s, err := root.Logical().Read("secret/data/good"); err != nil || s == nil {
		t.Fatalf("good key gone after the repair: %v", err)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// After unseal the server warns once per view holding such keys, with the count and the
// names ASCII-escaped, and says what to do; a clean store logs no such warning.
func TestInvalidUTF8KeyWarnedAtUnseal(t *testing.T) {
	var logs syncBuf
	s, key := startFuzzServer(t, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	root := s.Client(t, s.RootToken)
	mounts, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	uuid := mounts["secret/"].UUID
	for _, bad := range []string{"a-\xff", "b/\xc3("} {
		b, _ := json.Marshal(kvview.VersionWrittenPayload{Mount: uuid, Path: bad, Version: 1, Created: time.Now(),
			KeyID: "old-key", Sealed: []byte("not decryptable"), Oldest: 1})
		if _, err := s.Log.Append(context.Background(), []ledger.Event{{Type: kvview.VersionWritten, Subject: ledger.SubjectFor("kv", uuid, bad), Payload: b}}); err != nil {
			t.Fatal(err)
		}
	}
	if strings.Contains(logs.String(), "valid UTF-8") {
		t.Fatalf("warned before any unseal saw the keys: %s", logs.String())
	}
	if err := root.Sys().Seal(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Core.Unseal(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "warning logged", func() bool { return strings.Contains(logs.String(), "valid UTF-8") })
	out := logs.String()
	for _, want := range []string{"view=kv", "count=2", `a-\\ufffd`, `b/\\ufffd(`, "replay verify"} {
		if !strings.Contains(out, want) {
			t.Fatalf("warning lacks %q: %s", want, out)
		}
	}
	if strings.Count(out, "valid UTF-8") != 1 {
		t.Fatalf("want one warning for the kv view: %s", out)
	}
}
