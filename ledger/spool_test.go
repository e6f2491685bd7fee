package ledger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func spoolConfig(dir string) StreamConfig {
	return StreamConfig{Name: "TEST_AUDIT", Subject: "test_audit.batch", MaxAge: time.Hour, AsyncPersist: true,
		Spool: filepath.Join(dir, "spool")}
}

func openSpooled(t *testing.T, l *Log, k *Keyring, cfg StreamConfig) *Stream {
	t.Helper()
	s, err := OpenStream(context.Background(), l.JetStream(), cfg, func() *Keyring { return k })
	if err != nil {
		t.Fatal(err)
	}
	if s.sp == nil && !cfg.ChainPerSubject {
		t.Fatal("the stream does not spool: the test would prove nothing")
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitShipped waits until the spool has nothing JetStream does not hold.
func waitShipped(t *testing.T, s *Stream) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Backlog() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("spool backlog still %d after 30s", s.Backlog())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// countIDs counts each event id in the stream, whose chain chainOf checks.
func countIDs(t *testing.T, l *Log, name string) (map[string]int, int) {
	t.Helper()
	count := map[string]int{}
	batches := chainOf(t, l, name)
	for _, b := range batches {
		for _, e := range b.Events {
			count[e.hdr.ID]++
		}
	}
	return count, len(batches)
}

// A spooled stream answers an append once its events are in the spool, and ships them to
// JetStream in order, chained, each once, many appends per message; nothing of them is on disk
// in clear.
func TestSpoolShipsEachAppendOnce(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	s := openSpooled(t, l, k, spoolConfig(dir))
	const writers, each = 16, 200
	marker := "MARKER-spool-5d1e-plaintext"
	var wg sync.WaitGroup
	ids := make(chan string, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				id := newID()
				pos, err := s.Append(context.Background(), []Event{{ID: id, Type: "test.read.v1", Subject: "t.x",
					Payload: fmt.Appendf(nil, "%s-%d-%d", marker, w, i)}})
				if err != nil {
					t.Error(err)
					return
				}
				if pos != nil {
					t.Errorf("a spooled append answered positions %v: they are not known yet", pos)
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	waitShipped(t, s)
	count, msgs := countIDs(t, l, "TEST_AUDIT")
	n := 0
	for id := range ids {
		n++
		if count[id] != 1 {
			t.Fatalf("event %s stored %d times", id, count[id])
		}
	}
	if len(count) != n {
		t.Fatalf("%d events stored, %d appended", len(count), n)
	}
	if msgs >= n/2 {
		t.Errorf("%d appends took %d JetStream messages: the spool did not batch", n, msgs)
	}
	// Payloads open with the keyring, each writer's in the order it appended them.
	last := map[int]int{}
	for _, b := range chainOf(t, l, "TEST_AUDIT") {
		for x, se := range b.Events {
			e, err := se.Open(k, Position{Seq: b.Seq, Index: uint32(x)})
			if err != nil {
				t.Fatal(err)
			}
			var w, i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(string(e.Payload), marker), "-%d-%d", &w, &i); err != nil {
				t.Fatalf("payload %q: %v", e.Payload, err)
			}
			if prev, ok := last[w]; ok && i <= prev {
				t.Fatalf("writer %d: append %d stored after %d", w, i, prev)
			}
			last[w] = i
		}
	}
	s.Close()
	// Closed with everything shipped, the spool keeps no segment: a later open has nothing to
	// ship again, whatever the stream's last message is by then.
	if segs, _ := filepath.Glob(filepath.Join(dir, "spool", "*"+spoolSuffix)); len(segs) != 0 {
		t.Fatalf("segments left after a clean close: %v", segs)
	}
	l.Close()
	assertNotOnDisk(t, dir, marker)
	t.Logf("%d appends in %d messages", n, msgs)
}

// TestSpoolCrash runs a child that appends to a spooled stream from 16 goroutines and prints
// each acknowledged id, kills it with SIGKILL (the embedded JetStream server with it), four
// times; then every acknowledged record is in the stream exactly once, nothing twice.
func TestSpoolCrash(t *testing.T) {
	if os.Getenv("LEDGER_SPOOL_CHILD") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 4 {
		killChild(t, "TestSpoolCrashChild", []string{"LEDGER_SPOOL_CHILD=" + dir}, 2000+round*1500, ackedLine(acked))
	}
	l := openTest(t, dir)
	s := openSpooled(t, l, testKeyring(t), spoolConfig(dir))
	waitShipped(t, s)
	count, _ := countIDs(t, l, "TEST_AUDIT")
	storedOnce(t, acked, count)
}

// TestSpoolCrashChild is the child of TestSpoolCrash. Its segments are small, so they are
// ended and reused many times within a round.
func TestSpoolCrashChild(t *testing.T) {
	dir := os.Getenv("LEDGER_SPOOL_CHILD")
	if dir == "" {
		t.Skip("only run as the spool crash test's child")
	}
	spoolSegmentMax = 16 << 10
	l, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	k := testKeyring(t)
	s, err := OpenStream(context.Background(), l.JetStream(), spoolConfig(dir), func() *Keyring { return k })
	if err != nil {
		t.Fatal(err)
	}
	appendAndAck(func(id string) error {
		_, err := s.Append(context.Background(), []Event{{ID: id, Type: "t.v1", Payload: []byte("x")}})
		return err
	})
}

// sealedEvents makes n events to spool directly.
func sealedEvents(t *testing.T, k *Keyring, n int) []StoredEvent {
	t.Helper()
	out := make([]StoredEvent, n)
	for i := range out {
		e := Event{ID: newID(), Type: "t.v1", Time: time.Now(), Payload: fmt.Appendf(nil, "p%d", i)}
		se, err := sealEvent(&e, k)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = se
	}
	return out
}

func queuedSeqs(sp *spool) []uint64 {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	var out []uint64
	for _, g := range sp.queue {
		out = append(out, g.seq)
	}
	return out
}

// A torn last frame (a crash in the middle of a copy) is cut at the next open; the frames
// before it are read back whole; a frame that does not follow its predecessor's number (what is
// left of a reused segment's earlier use) ends the segment.
func TestSpoolTornAndStaleFrames(t *testing.T) {
	dir := t.TempDir()
	k := testKeyring(t)
	sp, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.dropShipped(""); err != nil {
		t.Fatal(err)
	}
	evs := sealedEvents(t, k, 5)
	for _, e := range evs {
		if err := sp.append([]StoredEvent{e}); err != nil {
			t.Fatal(err)
		}
	}
	seg := sp.curSeg.path
	size := sp.curSeg.size
	sp.close()
	sp.release()

	// Tear the last frame: keep all but its last byte.
	if err := os.Truncate(seg, size-1); err != nil {
		t.Fatal(err)
	}
	sp, err = openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := queuedSeqs(sp); len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("after a torn frame, queued %v, want 1..4", got)
	}
	for i, g := range sp.queue {
		if string(g.evs[0].rawHdr) != string(evs[i].rawHdr) || string(g.evs[0].payload) != string(evs[i].payload) {
			t.Fatalf("group %d read back changed", g.seq)
		}
	}
	if st, _ := os.Stat(seg); st.Size() >= size-1 {
		t.Fatalf("the torn frame was not cut: %d bytes", st.Size())
	}

	// A segment named 7 whose first frame is numbered 3 (left from an earlier use) holds nothing.
	stale := filepath.Join(dir, fmt.Sprintf("%020d%s", 7, spoolSuffix))
	b, _ := os.ReadFile(seg)
	if err := os.WriteFile(stale, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sp2, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := queuedSeqs(sp2); len(got) != 4 {
		t.Fatalf("with a stale segment, queued %v, want 1..4 once", got)
	}
	// The stream holds groups up to 2: they are not shipped again.
	if err := sp2.dropShipped(sp2.msgID(2)); err != nil {
		t.Fatal(err)
	}
	if got := queuedSeqs(sp2); len(got) != 2 || got[0] != 3 {
		t.Fatalf("after the stream's last message names group 2, queued %v", got)
	}
	if sp2.next <= 7 {
		t.Fatalf("next group %d would reuse a number of the segment named 7", sp2.next)
	}
	sp2.close()
	sp2.release()
	// Another spool's (or the direct writer's) message id says nothing about this spool.
	sp3, err := openSpool(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { sp3.close(); sp3.release() }()
	if err := sp3.dropShipped("0123456789abcdef0123456789abcdef-3"); err != nil {
		t.Fatal(err)
	}
	if got := queuedSeqs(sp3); len(got) != 4 {
		t.Fatalf("a foreign message id dropped groups: queued %v", got)
	}
}

// When JetStream does not take records, the spool fills and appends are refused (the
// requests they record fail) rather than answered unrecorded; what was spooled is stored once
// JetStream is back, also by a stream that then appends directly.
func TestSpoolFullRefusesAndLeftoversShip(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	defer func(p int, d time.Duration) { spoolMaxPending, spoolCloseDrain = p, d }(spoolMaxPending, spoolCloseDrain)
	spoolMaxPending, spoolCloseDrain = 32<<10, 200*time.Millisecond
	cfg := spoolConfig(dir)
	s := openSpooled(t, l, k, cfg)
	marker := "MARKER-spool-9b2c-plaintext"
	if err := l.JetStream().DeleteStream(context.Background(), cfg.Name); err != nil {
		t.Fatal(err)
	}
	var acked []string
	var full error
	for range 10000 {
		id := newID()
		_, err := s.Append(context.Background(), []Event{{ID: id, Type: "test.read.v1", Payload: []byte(strings.Repeat(marker, 8))}})
		if err != nil {
			full = err
			break
		}
		acked = append(acked, id)
	}
	if !errors.Is(full, ErrSpoolFull) || len(acked) == 0 {
		t.Fatalf("with JetStream gone: %d appends, then %v; want some, then ErrSpoolFull", len(acked), full)
	}
	s.Close() // leaves the records in the spool, sealed
	if segs, _ := filepath.Glob(filepath.Join(cfg.Spool, "*"+spoolSuffix)); len(segs) == 0 {
		t.Fatal("no segment left with the records JetStream did not take")
	}
	assertNotOnDisk(t, cfg.Spool, marker)
	// Reopened as a stream that appends directly (chained per subject, as on a cluster): the
	// leftovers are stored before it opens.
	cfg.ChainPerSubject = true
	s2 := openSpooled(t, l, k, cfg)
	if s2.sp != nil {
		t.Fatal("a stream chained per subject spools")
	}
	count, _ := countIDs(t, l, cfg.Name)
	for _, id := range acked {
		if count[id] != 1 {
			t.Fatalf("spooled record %s stored %d times", id, count[id])
		}
	}
	if _, err := s2.Append(context.Background(), []Event{{Type: "test.read.v1", Payload: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
	if n, _ := countIDs(t, l, cfg.Name); len(n) != len(acked)+1 {
		t.Fatalf("%d records stored, want %d", len(n), len(acked)+1)
	}
}

// A stream told to append directly does not spool, even given a spool directory: an append
// is answered with its position once JetStream has it.
func TestSpoolDirect(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	cfg := spoolConfig(dir)
	cfg.Direct = true
	s, err := OpenStream(context.Background(), l.JetStream(), cfg, func() *Keyring { return testKeyring(t) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.sp != nil {
		t.Fatal("a direct stream spools")
	}
	pos, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Payload: []byte("x")}})
	if err != nil || len(pos) != 1 || pos[0].Seq != 1 {
		t.Fatalf("direct append: %v %v", pos, err)
	}
	if _, err := os.Stat(cfg.Spool); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a direct stream made its spool directory: %v", err)
	}
}

// A spool that cannot make a segment (here one too large for the file system) leaves the
// stream appending directly rather than refusing to open.
func TestSpoolFallsBackToDirect(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer func(n int) { spoolSegmentMax = n }(spoolSegmentMax)
	spoolSegmentMax = 1 << 62
	s, err := OpenStream(context.Background(), l.JetStream(), spoolConfig(dir), func() *Keyring { return testKeyring(t) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.sp != nil {
		t.Fatal("the stream spools without a segment")
	}
	if pos, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Payload: []byte("x")}}); err != nil || len(pos) != 1 {
		t.Fatalf("append after the fallback: %v %v", pos, err)
	}
}

// Flush returns once JetStream holds what was spooled before the call (a reader of the stream
// then sees it); with JetStream not taking it, it says how many groups are left, within its
// timeout; a stream that appends directly has nothing to flush.
func TestSpoolFlush(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	k := testKeyring(t)
	defer func(d time.Duration) { spoolCloseDrain = d }(spoolCloseDrain)
	spoolCloseDrain = 200 * time.Millisecond
	cfg := spoolConfig(dir)
	s := openSpooled(t, l, k, cfg)
	for round := range 5 {
		var wg sync.WaitGroup
		ids := make(chan string, 8*50)
		for range 8 {
			wg.Go(func() {
				for range 50 {
					id := newID()
					if _, err := s.Append(context.Background(), []Event{{ID: id, Type: "test.read.v1", Payload: []byte("x")}}); err != nil {
						t.Error(err)
						return
					}
					ids <- id
				}
			})
		}
		wg.Wait()
		close(ids)
		if left := s.Flush(30 * time.Second); left != 0 {
			t.Fatalf("round %d: Flush left %d groups with JetStream up", round, left)
		}
		count, _ := countIDs(t, l, cfg.Name)
		for id := range ids {
			if count[id] != 1 {
				t.Fatalf("round %d: record %s stored %d times right after Flush, want once", round, id, count[id])
			}
		}
	}

	// JetStream no longer takes them: Flush reports what is left, and returns.
	if err := l.JetStream().DeleteStream(context.Background(), cfg.Name); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Append(context.Background(), []Event{{ID: newID(), Type: "test.read.v1", Payload: []byte("y")}}); err != nil {
			if i == 0 {
				t.Fatal(err)
			}
			break // refused once the shipper has failed: what is queued stays
		}
	}
	start := time.Now()
	if left := s.Flush(2 * time.Second); left == 0 {
		t.Fatal("Flush reports nothing left while JetStream has no stream to take the records")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Flush took %s with a 2 s timeout", d)
	}

	direct := cfg
	direct.Name, direct.Subject, direct.Spool, direct.Direct = "TEST_AUDIT_DIRECT", "test_audit_direct.batch", filepath.Join(dir, "spool2"), true
	d, err := OpenStream(context.Background(), l.JetStream(), direct, func() *Keyring { return k })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if left := d.Flush(time.Second); left != 0 {
		t.Fatalf("a direct stream's Flush: %d", left)
	}
}
