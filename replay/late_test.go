package replay_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/replay"
)

// TestDeferredViews: views restored after the runner caught up (and went on following the
// log) end up exactly where a full replay puts them, through both ways records arrive —
// prepared by the catch-up pipeline and applied one batch at a time by Run. Until then nothing
// cuts them: Hold waits, WaitReady waits.
func TestDeferredViews(t *testing.T) {
	e := newEnv(t)
	e.append(t, mountEvent(t, "secret/", mountUUID))
	e.fillKV(t, mountUUID, 200, 20, 2)
	e.append(t, policyEvent("app", `path "secret/*" { capabilities = ["read"] }`))
	live := projections.NewRunner(e.log, e.kr, newViews()...)
	if err := live.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := e.snapshotOf(t, live, nil)
	f, err := replay.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := f.Open(e.kr)
	if err != nil {
		t.Fatal(err)
	}

	// The log goes on past the checkpoint: the tail a restart catches up with.
	for v := uint64(2); v <= 4; v++ {
		e.append(t, kvWrite(mountUUID, 7, v, 2), kvWrite(mountUUID, 8, v, 2))
	}
	e.append(t, policyEvent("ops", `path "sys/*" { capabilities = ["read"] }`))

	views := newViews() // mount, policy, kv, lease
	late := []projections.View{views[1], views[2]}
	r := projections.NewRunner(e.log, e.kr, views...)
	if _, err := snap.Restore([]projections.View{views[0], views[3]}, replay.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	r.StartAt(snap.Seq, snap.Hash)
	r.Defer(late...)
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !r.Deferred() {
		t.Fatal("Deferred() = false with two views held back")
	}
	if got := r.AppliedBy("kv"); got != snap.Seq {
		t.Fatalf("AppliedBy(kv) = %d while deferred, want the checkpoint's %d", got, snap.Seq)
	}
	if got := r.AppliedBy("mount"); got != r.Applied() || got <= snap.Seq {
		t.Fatalf("AppliedBy(mount) = %d, want Applied() %d past the checkpoint", got, r.Applied())
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(ctx) }()
	// Batches Run applies one at a time while the views are still held back.
	for v := uint64(5); v <= 6; v++ {
		if err := r.WaitFor(context.Background(), e.append(t, kvWrite(mountUUID, 7, v, 2))); err != nil {
			t.Fatal(err)
		}
	}
	short, stop := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer stop()
	if err := r.WaitReady(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady with views deferred = %v, want the context's deadline", err)
	}
	held := make(chan error, 1)
	go func() { held <- r.Hold(func(uint64, [32]byte) error { return nil }) }()
	select {
	case err := <-held:
		t.Fatalf("Hold returned (%v) before the deferred views were ready", err)
	case <-time.After(50 * time.Millisecond):
	}

	for _, v := range late {
		part, ok := snap.View(v.Name())
		if !ok {
			t.Fatalf("snapshot lacks %s", v.Name())
		}
		if err := r.Ready(v, v.Restore(part.Data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-held; err != nil {
		t.Fatalf("Hold after Ready: %v", err)
	}
	if err := r.WaitReady(context.Background()); err != nil || r.Deferred() {
		t.Fatalf("WaitReady = %v, Deferred = %v once every view is ready", err, r.Deferred())
	}
	if got := r.AppliedBy("kv"); got != r.Applied() {
		t.Fatalf("AppliedBy(kv) = %d once ready, want %d", got, r.Applied())
	}
	// From now on every view is applied to directly.
	last := e.append(t, kvWrite(mountUUID, 9, 1, 2), policyEvent("late", `path "x" { capabilities = ["read"] }`))
	if err := r.WaitFor(context.Background(), last); err != nil {
		t.Fatal(err)
	}
	want := projections.NewRunner(e.log, e.kr, newViews()...)
	if err := want.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i, v := range views {
		if v.Digest() != want.Views()[i].Digest() {
			t.Errorf("view %s differs from a full replay's", v.Name())
		}
	}
	if err := r.Ready(late[0], nil); err == nil {
		t.Error("Ready of a view no longer deferred: no error")
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

// TestDeferredViewFails: a deferred view that cannot be restored is never served: WaitReady and
// Hold report why, and records stop being kept for it.
func TestDeferredViewFails(t *testing.T) {
	e := newEnv(t)
	e.append(t, mountEvent(t, "secret/", mountUUID))
	views := newViews()
	r := projections.NewRunner(e.log, e.kr, views...)
	r.Defer(views[2], views[3])
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.append(t, kvEvent(mountUUID, 1, 1))
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	bad := errors.New("section unreadable")
	if err := r.Ready(views[2], bad); !errors.Is(err, bad) {
		t.Fatalf("Ready(err) = %v, want it wrapped", err)
	}
	if err := r.WaitReady(context.Background()); !errors.Is(err, projections.ErrDeferred) || !errors.Is(err, bad) {
		t.Fatalf("WaitReady = %v, want ErrDeferred wrapping the restore's error", err)
	}
	if err := r.Hold(func(uint64, [32]byte) error { t.Error("Hold ran fn over a failed view"); return nil }); !errors.Is(err, bad) {
		t.Fatalf("Hold = %v, want the restore's error", err)
	}
	if err := r.Ready(views[3], nil); !errors.Is(err, projections.ErrDeferred) {
		t.Fatalf("Ready after a failure = %v, want ErrDeferred", err)
	}
	// The runner still follows the log for the views it serves.
	e.append(t, kvEvent(mountUUID, 2, 1))
	if err := r.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
}
