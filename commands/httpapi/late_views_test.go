package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/replay"
)

// TestViewsLoadedAfterUnseal: the fingerprint and history indexes are restored after unseal
// returns (commands/unsealed.go, lateViews), and what they answer then is what a node that
// loaded them before answering would: matches and history from before the checkpoint, from
// the log's tail after it, and from writes made while they load; and a replay verify agrees.
func TestViewsLoadedAfterUnseal(t *testing.T) {
	viewsLoadedAfterUnseal(t, false)
}

// TestLateSectionsDamagedRebuiltFromLog: the checkpoint's late sections (read after unseal
// answers, from the end of the object) altered while the server was sealed: the early views
// load from the checkpoint, the deferred ones do not authenticate and are rebuilt from the
// log instead, and they answer as they would have — the node stays unsealed.
func TestLateSectionsDamagedRebuiltFromLog(t *testing.T) {
	viewsLoadedAfterUnseal(t, true)
}

func viewsLoadedAfterUnseal(t *testing.T, damage bool) {
	ctx := context.Background()
	var logs syncBuffer
	// No timed checkpoints: one comes after 1,000 batches, so the writes after it are a tail.
	s := startServerWith(t, commands.Options{Snapshots: commands.SnapshotOptions{Interval: time.Hour},
		Logger: slog.New(slog.NewTextHandler(io.MultiWriter(&logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelInfo}))})
	root := s.Client(t, s.RootToken)
	value := func(stage string, i int) string { return fmt.Sprintf("late-view-%s-%04d-value", stage, i) }
	put := func(stage string, i int) {
		t.Helper()
		if _, err := root.KVv2("secret").Put(ctx, fmt.Sprintf("lv/%s/%d", stage, i), map[string]any{"v": value(stage, i)}); err != nil {
			t.Fatal(err)
		}
	}
	policy := func(v int) {
		t.Helper()
		if err := root.Sys().PutPolicy("late", fmt.Sprintf(`path "secret/data/v%d" { capabilities = ["read"] }`, v)); err != nil {
			t.Fatal(err)
		}
	}
	seqs := func() (checkpoint, kv, fp float64) {
		code, body := scrape(t, s.URL, s.RootToken, "/v1/sys/metrics?format=prometheus")
		if code != http.StatusOK {
			t.Fatalf("sys/metrics: %d %s", code, body)
		}
		mfs := promMetrics(t, body)
		return gaugeValue(t, mfs, "ledger_checkpoint_seq"), gaugeValue(t, mfs, "ledger_view_applied_seq", "view", "kv"),
			gaugeValue(t, mfs, "ledger_view_applied_seq", "view", "fingerprint")
	}

	policy(1)
	base := 0
	for ; ; base++ {
		put("base", base)
		if cp, _, _ := seqs(); cp > 0 {
			base++
			break
		}
		if base > 5000 {
			t.Fatal("no checkpoint after 5,000 writes")
		}
	}
	// The tail: fewer than 1,000 batches, so no checkpoint cuts it.
	policy(2)
	for i := range 20 {
		put("tail", i)
	}
	cp, kv, _ := seqs()
	if kv <= cp {
		t.Fatalf("no tail after the checkpoint: checkpoint %v, applied %v", cp, kv)
	}

	s.Core.Seal()
	if damage {
		damageLateSection(t, s, "views/fingerprint.sealed")
	}
	if _, err := root.Sys().Unseal(s.UnsealKey); err != nil {
		t.Fatal(err)
	}
	// Written while the indexes may still be loading.
	policy(3)
	for i := range 5 {
		put("during", i)
	}

	match := func(stage string, n int) {
		t.Helper()
		var cands []string
		for i := range n {
			cands = append(cands, value(stage, i))
		}
		sec, err := root.Logical().Write("sys/ledger/fingerprints/match", map[string]any{"candidates": cands})
		if err != nil {
			t.Fatalf("match %s: %v", stage, err)
		}
		found := map[float64]bool{}
		for _, m := range sec.Data["matches"].([]any) {
			n, _ := m.(map[string]any)["candidate"].(json.Number)
			f, _ := n.Float64()
			found[f] = true
		}
		if len(found) != n {
			t.Fatalf("match %s: %d of %d values found after the restart", stage, len(found), n)
		}
	}
	match("base", base)
	match("tail", 20)
	match("during", 5)
	if evs := histEvents(t, s, s.RootToken, "sys/policies/acl/late"); len(evs) != 3 {
		t.Fatalf("history of the policy: %d events after the restart, want 3: %v", len(evs), evs)
	}
	if _, kv, fp := seqs(); fp != kv {
		t.Fatalf("fingerprint view applied %v, kv %v, once loaded", fp, kv)
	}
	verifyOK(t, root, "genesis")
	if rebuilt := strings.Contains(logs.String(), "rebuilding them from the log"); rebuilt != damage {
		t.Fatalf("deferred views rebuilt from the log: %v, with the late section damaged: %v", rebuilt, damage)
	}
	if st, err := root.Sys().SealStatus(); err != nil || st.Sealed {
		t.Fatalf("seal status %+v, %v: the node should stay unsealed", st, err)
	}
	// And the indexes were indeed loaded after the unseal answered (restoreLate logs it once
	// both are in).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs.String(), "deferred views loaded"); {
		if time.Now().After(deadline) {
			t.Fatal(`the unseal from the checkpoint did not load the indexes after answering (no "deferred views loaded" in the log)`)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// damageLateSection alters one byte in the middle of section's sealed body in the newest
// checkpoint, as a disk or a hand might; the object is stored again whole (the object store's
// own digests match), so only the section's seal can tell.
func damageLateSection(t *testing.T, s *testServer, section string) {
	t.Helper()
	ctx := context.Background()
	store, err := replay.OpenStore(ctx, s.Log.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	// The node's own copy of its checkpoints (commands' localCheckpointDir) is what unseal
	// reads: the damaged bytes go there as well as into the bucket.
	local, err := replay.OpenLocal(filepath.Join(s.Log.LocalDir(), "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	store.UseLocal(ctx, local)
	auto, err := store.AutoNames(ctx)
	if err != nil || len(auto) == 0 {
		t.Fatalf("checkpoints: %v, %v", auto, err)
	}
	data, err := store.Get(ctx, auto[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte(section+"\x00")) // its tar header
	if at < 0 {
		t.Fatalf("%s has no %s", auto[0].Name, section)
	}
	at += 2048 // into the sealed body, past the header
	if at >= len(data)-2048 {
		t.Fatalf("%s: %s is too short to damage", auto[0].Name, section)
	}
	data[at] ^= 0x10
	if err := store.Put(ctx, auto[0].Name, data, auto[0].Seq); err != nil {
		t.Fatal(err)
	}
}
