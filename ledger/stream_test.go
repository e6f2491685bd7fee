package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func openTestStream(t *testing.T, l *Log, k *Keyring) *Stream {
	t.Helper()
	return openTestStreamGathering(t, l, k, 0)
}

// openTestStreamGathering opens the test stream with StreamConfig.Gather set to gather.
func openTestStreamGathering(t *testing.T, l *Log, k *Keyring, gather time.Duration) *Stream {
	t.Helper()
	s, err := OpenStream(context.Background(), l.JetStream(), StreamConfig{Name: "TEST_AUDIT", Subject: "test_audit.batch", MaxAge: time.Hour, Gather: gather},
		func() *Keyring { return k })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// chainOf reads every batch of the stream and checks each links to the one before.
func chainOf(t *testing.T, l *Log, name string) []Batch {
	t.Helper()
	ctx := context.Background()
	st, err := l.JetStream().Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []Batch
	var prev [32]byte
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
		b, err := DecodeBatch(seq, m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if b.Prev != prev {
			t.Fatalf("seq %d does not chain to %d", seq, seq-1)
		}
		prev = sha256.Sum256(m.Data)
		out = append(out, b)
	}
	return out
}

func TestStreamGroupCommitsAndChains(t *testing.T) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	s := openTestStream(t, l, k)
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[Position]bool{}
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pos, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Subject: "t.x", Payload: []byte(fmt.Sprint(i))}})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if seen[pos[0]] {
				t.Errorf("position %v given twice", pos[0])
			}
			seen[pos[0]] = true
			mu.Unlock()
		}()
	}
	wg.Wait()
	batches := chainOf(t, l, "TEST_AUDIT")
	events := 0
	for _, b := range batches {
		for i, se := range b.Events {
			if _, err := se.Open(k, Position{Seq: b.Seq, Index: uint32(i)}); err != nil {
				t.Fatal(err)
			}
			events++
		}
	}
	if events != 200 || len(batches) >= 200 {
		t.Fatalf("%d events in %d batches: want 200 events, group-committed", events, len(batches))
	}
	// The log's stream is untouched.
	if seq, _ := l.LastSeq(context.Background()); seq != 0 {
		t.Fatalf("the log has %d batches", seq)
	}
}

// Two writers on one stream (two nodes): neither fails, and the chain stays whole.
func TestStreamTwoWritersKeepTheChain(t *testing.T) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	a, b := openTestStream(t, l, k), openTestStream(t, l, k)
	var wg sync.WaitGroup
	for i := range 100 {
		w := a
		if i%2 == 1 {
			w = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := w.Append(context.Background(), []Event{{Type: "test.read.v1", Subject: "t.x", Payload: []byte("x")}}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	n := 0
	for _, bt := range chainOf(t, l, "TEST_AUDIT") {
		n += len(bt.Events)
	}
	if n != 100 {
		t.Fatalf("%d events stored, want 100", n)
	}
}

func TestStreamRefusals(t *testing.T) {
	l := openTest(t, t.TempDir())
	s := openTestStream(t, l, nil)
	if _, err := s.Append(context.Background(), []Event{{Type: "t", Payload: []byte("x")}}); !errors.Is(err, ErrSealed) {
		t.Fatalf("append without keyring: %v", err)
	}
	s2 := openTestStream(t, l, testKeyring(t))
	if _, err := s2.Append(context.Background(), []Event{{Type: "t", Raw: true}}); err == nil {
		t.Fatal("a raw event was accepted")
	}
	if _, err := s2.Append(context.Background(), []Event{{Type: "t", Payload: make([]byte, maxMessageBytes)}}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized append: %v", err)
	}
	s2.Close()
	if _, err := s2.Append(context.Background(), []Event{{Type: "t", Payload: []byte("x")}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	// Deletes are denied, as on the log.
	st, _ := l.JetStream().Stream(context.Background(), "TEST_AUDIT")
	info, _ := st.Info(context.Background())
	if !info.Config.DenyDelete || !info.Config.DenyPurge || info.Config.MaxAge != time.Hour {
		t.Fatalf("stream config: %+v", info.Config)
	}
}

// appendAll runs n concurrent single-event appends and returns, per payload, the position it
// was acknowledged at (missing: the append failed).
func appendAll(t *testing.T, s *Stream, n int, during func(i int)) (map[string]Position, int) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	got, failed := map[string]Position{}, 0
	for i := range n {
		if during != nil {
			during(i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("payload-%d", i)
			pos, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Subject: "t.x", Payload: []byte(p)}})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			got[p] = pos[0]
		}()
	}
	wg.Wait()
	return got, failed
}

// storedAt opens every event of the stream (whose chain chainOf checks) by position.
func storedAt(t *testing.T, l *Log, k *Keyring, name string) map[Position]string {
	t.Helper()
	out := map[Position]string{}
	for _, b := range chainOf(t, l, name) {
		for i, se := range b.Events {
			pos := Position{Seq: b.Seq, Index: uint32(i)}
			e, err := se.Open(k, pos)
			if err != nil {
				t.Fatal(err)
			}
			out[pos] = string(e.Payload)
		}
	}
	return out
}

// With several batches in flight, each append is answered with the position its own event was
// stored at, every event is stored once, and the chain stays whole.
//
// Gathering (StreamConfig.Gather, two batches in flight) keeps all of that.
func TestStreamPipelineOrder(t *testing.T) {
	for _, gather := range []time.Duration{0, 200 * time.Microsecond} {
		t.Run(fmt.Sprintf("gather=%s", gather), func(t *testing.T) { testStreamPipelineOrder(t, gather) })
	}
}

func testStreamPipelineOrder(t *testing.T, gather time.Duration) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	s := openTestStreamGathering(t, l, k, gather)
	for round := range 3 {
		got, failed := appendAll(t, s, 300, nil)
		if failed != 0 {
			t.Fatalf("round %d: %d appends failed", round, failed)
		}
		stored := storedAt(t, l, k, "TEST_AUDIT")
		if len(stored) != 300*(round+1) {
			t.Fatalf("round %d: %d events stored, want %d", round, len(stored), 300*(round+1))
		}
		for p, pos := range got {
			if stored[pos] != p {
				t.Fatalf("%s acknowledged at %v, which holds %q", p, pos, stored[pos])
			}
		}
	}
}

// A batch JetStream refuses fails its appenders and every batch in flight behind it; no append
// is acknowledged unless its event is stored at the position it was given. With gathering too.
func TestStreamPipelineFailsClosed(t *testing.T) {
	for _, gather := range []time.Duration{0, 200 * time.Microsecond} {
		t.Run(fmt.Sprintf("gather=%s", gather), func(t *testing.T) { testStreamPipelineFailsClosed(t, gather) })
	}
}

func testStreamPipelineFailsClosed(t *testing.T, gather time.Duration) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	s := openTestStreamGathering(t, l, k, gather)
	ctx := context.Background()
	st, err := l.JetStream().Stream(ctx, "TEST_AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	got, failed := appendAll(t, s, 400, func(i int) {
		if i != 200 {
			return
		}
		cfg := st.CachedInfo().Config
		cfg.Sealed = true // from now on JetStream refuses every message
		if _, err := l.JetStream().UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	})
	if failed == 0 {
		t.Fatal("no append failed after the stream was sealed")
	}
	stored := storedAt(t, l, k, "TEST_AUDIT")
	for p, pos := range got {
		if stored[pos] != p {
			t.Fatalf("%s acknowledged at %v, which holds %q", p, pos, stored[pos])
		}
	}
	if len(got) > len(stored) {
		t.Fatalf("%d appends acknowledged, %d events stored", len(got), len(stored))
	}
	if _, err := s.Append(ctx, []Event{{Type: "test.read.v1", Payload: []byte("late")}}); err == nil {
		t.Fatal("an append to a sealed stream was acknowledged")
	}
}

// TestDedupeWindows: the data-key streams, whose publishes are not fenced, remember message ids
// for longer than a publish can go on retrying one (commitDeadline plus a last attempt), so a
// retry of a stored message is acknowledged, never stored twice — and not much longer, since a
// restart reloads every message inside the window. The fenced log and audit streams keep
// JetStream's least window: their retries are settled from the stream (the tests below).
func TestDedupeWindows(t *testing.T) {
	if dedupeWindow <= commitDeadline+publishTimeout || dedupeWindow > 2*time.Minute {
		t.Fatalf("dedupe window %s: want more than a publish's retry span (%s) and at most 2m", dedupeWindow, commitDeadline+publishTimeout)
	}
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	openTestStream(t, l, k)
	openDataKeys(t, l, k)
	want := map[string]time.Duration{StreamName: fencedDedupe, "TEST_AUDIT": fencedDedupe,
		DataKeysStream: dedupeWindow, DataKeysRootStream: dedupeWindow}
	names := l.JetStream().StreamNames(context.Background())
	n := 0
	for name := range names.Name() {
		if strings.HasPrefix(name, "OBJ_") || strings.HasPrefix(name, "KV_") {
			continue // nats.go's own buckets: no Ledger publisher retries on them
		}
		st, err := l.JetStream().Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("stream %s: no dedupe window expected of it; say which it needs", name)
			continue
		}
		if d := st.CachedInfo().Config.Duplicates; d != w {
			t.Errorf("stream %s: dedupe window %s, want %s", name, d, w)
		}
		n++
	}
	if n != len(want) {
		t.Fatalf("checked %d streams, want the log, a stream and the two data-key streams", n)
	}
}

// storeFirstAttempt stores, on stream name at sequence after+1 (fenced there), the message id
// and data of a batch's first attempt whose acknowledgement the writer never saw; then another
// writer's batch after it, and waits out JetStream's duplicate window.
func storeFirstAttempt(t *testing.T, l *Log, name, subject string, after uint64, msgID string, data []byte) uint64 {
	t.Helper()
	ctx := context.Background()
	pub := func(id string, expect uint64, data []byte) uint64 {
		msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, id)
		msg.Header.Set(jetstream.ExpectedLastSeqHeader, strconv.FormatUint(expect, 10))
		ack, err := l.JetStream().PublishMsg(ctx, msg, jetstream.WithExpectStream(name))
		if err != nil {
			t.Fatal(err)
		}
		return ack.Sequence
	}
	first := pub(msgID, after, data)
	pub(newID(), first, data)
	time.Sleep(3 * fencedDedupe)
	return first
}

// A log batch stored with its acknowledgement lost, another writer's batch after it and the
// duplicate window long past: the retry is refused by its fence, the batch is found where the
// fence let it be stored, acknowledged at that sequence, and stored once (with only the last
// message looked at, the retry was answered ErrConflict and the caller decided it again).
func TestLogRetryOfAStoredBatchAfterTheWindow(t *testing.T) {
	ctx := context.Background()
	l := openTest(t, t.TempDir())
	if _, err := l.Append(ctx, []Event{{Type: "t.v1", Raw: true, Payload: []byte("before")}}); err != nil {
		t.Fatal(err)
	}
	ev, err := sealEvent(&Event{Type: "t.v1", Raw: true, Payload: []byte("retried")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data := encodeBatch(l.prevHash, []StoredEvent{ev})
	msgID := newID()
	first := storeFirstAttempt(t, l, StreamName, SubjectData, l.lastSeq, msgID, data)
	seq, err := l.publishAs(SubjectData, data, 0, msgID)
	if err != nil || seq != first {
		t.Fatalf("retry of a batch stored at %d: %d, %v", first, seq, err)
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("the stream holds %d batches, want 3 (the retried one once)", info.State.Msgs)
	}
	// A fence that moved for another reason is still a conflict: nothing of this batch stored.
	seq, err = l.publishAs(SubjectData, data, 0, newID())
	if !errors.Is(err, ErrConflict) || seq != 0 {
		t.Fatalf("a batch behind another writer's: %d, %v, want ErrConflict", seq, err)
	}
}

// The audit stream's writer, the same: its retry finds the batch at the sequence after the
// fence, behind another writer's batch, with the window past.
func TestStreamRetryOfAStoredBatchAfterTheWindow(t *testing.T) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	s := openTestStream(t, l, k)
	if _, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Payload: []byte("before")}}); err != nil {
		t.Fatal(err)
	}
	msgID := newID()
	first := storeFirstAttempt(t, l, "TEST_AUDIT", "test_audit.batch", s.lastSeq, msgID, []byte("first attempt"))
	seq, stored, err := s.storedPastFence(context.Background(), msgID)
	if err != nil || !stored || seq != first {
		t.Fatalf("batch stored at %d: found %v at %d, %v", first, stored, seq, err)
	}
	if s.lastSeq != first+1 {
		t.Fatalf("writer's position %d after the search, want the stream's last, %d", s.lastSeq, first+1)
	}
	if _, stored, err := s.storedPastFence(context.Background(), newID()); err != nil || stored {
		t.Fatalf("a batch never stored: found %v, %v", stored, err)
	}
}
