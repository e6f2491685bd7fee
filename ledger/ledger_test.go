package ledger

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func openTest(t testing.TB, dir string) *Log {
	t.Helper()
	l, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func testKeyring(t testing.TB) *Keyring {
	t.Helper()
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// readAll opens every event in the log with k.
func readAll(t testing.TB, l *Log, k *Keyring) []Record {
	t.Helper()
	var out []Record
	err := l.ReadRange(context.Background(), 1, 0, false, func(b Batch) error {
		for i, se := range b.Events {
			r, err := se.Open(k, Position{Seq: b.Seq, Index: uint32(i)})
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return out
}

func TestAppendReadRoundTrip(t *testing.T) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	l.SetKeyring(k)
	ctx := context.Background()
	pos, err := l.Append(ctx, []Event{
		{Type: "test.written.v1", Subject: SubjectFor("test", "a"), Payload: []byte("one"), Actor: "acc1"},
		{Type: "test.written.v1", Subject: SubjectFor("test", "b"), Payload: []byte("two")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pos) != 2 || pos[0].Seq != pos[1].Seq || pos[1].Index != 1 {
		t.Fatalf("positions %v: want one batch, indexes 0 and 1", pos)
	}
	recs := readAll(t, l, k)
	if len(recs) != 2 || string(recs[0].Payload) != "one" || string(recs[1].Payload) != "two" || recs[0].Actor != "acc1" {
		t.Fatalf("read back %+v", recs)
	}
	if recs[0].Term != 1 || recs[0].ID == "" || recs[0].Time.IsZero() {
		t.Fatalf("header not filled: %+v", recs[0])
	}
}

func TestAppendWithoutKeyringIsSealed(t *testing.T) {
	l := openTest(t, t.TempDir())
	_, err := l.Append(context.Background(), []Event{{Type: "x.v1", Payload: []byte("p")}})
	if !errors.Is(err, ErrSealed) {
		t.Fatalf("got %v, want ErrSealed", err)
	}
	// Raw (seal-state) events need no keyring.
	if _, err := l.Append(context.Background(), []Event{{Type: "seal.x.v1", Raw: true, Payload: []byte("p")}}); err != nil {
		t.Fatal(err)
	}
}

func TestTamperedPayloadNamesSequence(t *testing.T) {
	k := testKeyring(t)
	e := Event{ID: "id", Type: "t.v1", Subject: "s", Time: time.Unix(1, 0), Payload: []byte("secret")}
	se, err := sealEvent(&e, k)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		mutate func(StoredEvent) StoredEvent
	}{
		{"payload bit flipped", func(s StoredEvent) StoredEvent {
			p := bytes.Clone(s.payload)
			p[len(p)-1] ^= 1
			s.payload = p
			return s
		}},
		{"payload moved under another header", func(s StoredEvent) StoredEvent {
			o := Event{ID: "other", Type: "t.v1", Subject: "s", Time: time.Unix(1, 0), Payload: []byte("x")}
			other, _ := sealEvent(&o, k)
			other.payload = s.payload
			return other
		}},
		{"truncated", func(s StoredEvent) StoredEvent { s.payload = s.payload[:3]; return s }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.mutate(se).Open(k, Position{Seq: 42, Index: 3})
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "42.3") {
				t.Fatalf("got %v, want ErrCorrupt naming 42.3", err)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatal("error leaks the plaintext")
			}
		})
	}
}

func TestDecodeBatchRejectsGarbage(t *testing.T) {
	good := encodeBatch([32]byte{}, nil)
	for name, data := range map[string][]byte{
		"empty":       nil,
		"wrong magic": append([]byte("XXXX"), good[4:]...),
		"truncated":   encodeBatch([32]byte{}, []StoredEvent{{rawHdr: header{ID: "a"}.encode(nil), payload: []byte("p")}})[:40],
		"trailing":    append(bytes.Clone(good), 1),
	} {
		if _, err := DecodeBatch(7, data); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "seq 7") {
			t.Errorf("%s: got %v, want ErrCorrupt naming seq 7", name, err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	f.Add(encodeBatch([32]byte{}, []StoredEvent{{rawHdr: header{ID: "a", Type: "t"}.encode(nil), payload: []byte("p")}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = DecodeBatch(1, data)
	})
}

func TestKeyringRotationSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	root := bytes.Repeat([]byte{7}, RootKeySize)
	k1 := testKeyring(t)
	l := openTest(t, dir)
	l.SetKeyring(k1)
	ctx := context.Background()
	if _, err := l.Append(ctx, []Event{{Type: "t.v1", Payload: []byte("under term 1")}}); err != nil {
		t.Fatal(err)
	}
	k2, err := k1.Rotate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l.SetKeyring(k2)
	if _, err := l.Append(ctx, []Event{{Type: "t.v1", Payload: []byte("under term 2")}}); err != nil {
		t.Fatal(err)
	}
	blob, err := k2.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()

	k, err := UnwrapKeyring(root, blob)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := UnwrapKeyring(bytes.Repeat([]byte{8}, RootKeySize), blob); !errors.Is(err, ErrWrongRootKey) {
		t.Fatalf("wrong root key: got %v", err)
	}
	l2 := openTest(t, dir)
	recs := readAll(t, l2, k)
	if len(recs) != 2 || recs[0].Term != 1 || recs[1].Term != 2 || string(recs[0].Payload) != "under term 1" {
		t.Fatalf("after rotation and restart: %+v", recs)
	}
	if k.Term() != 2 || len(k.Terms()) != 2 {
		t.Fatalf("terms %v", k.Terms())
	}
	if k.MAC("token", "x") != k1.MAC("token", "x") {
		t.Fatal("token MAC changed across rotation; stored tokens would stop resolving")
	}
}

func TestConcurrentAppendsAreOrderedAndBatched(t *testing.T) {
	l := openTest(t, t.TempDir())
	k := testKeyring(t)
	l.SetKeyring(k)
	const workers, each = 32, 40
	var wg sync.WaitGroup
	seen := make(chan Position, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p, err := l.Append(context.Background(), []Event{{Type: "t.v1", Payload: fmt.Appendf(nil, "%d-%d", w, i)}})
				if err != nil {
					t.Error(err)
					return
				}
				seen <- p[0]
			}
		}()
	}
	wg.Wait()
	close(seen)
	uniq := map[Position]bool{}
	for p := range seen {
		if uniq[p] {
			t.Fatalf("position %v given twice", p)
		}
		uniq[p] = true
	}
	recs := readAll(t, l, k)
	if len(recs) != workers*each {
		t.Fatalf("read %d events, want %d", len(recs), workers*each)
	}
	last, _ := l.LastSeq(context.Background())
	if last >= uint64(workers*each) {
		t.Errorf("%d batches for %d appends: group commit is not grouping", last, workers*each)
	}
}

func TestChainLinksBatches(t *testing.T) {
	l := openTest(t, t.TempDir())
	l.SetKeyring(testKeyring(t))
	for range 3 {
		if _, err := l.Append(context.Background(), []Event{{Type: "t.v1"}}); err != nil {
			t.Fatal(err)
		}
	}
	var prev [32]byte
	err := l.ReadRange(context.Background(), 1, 0, false, func(b Batch) error {
		if b.Prev != prev {
			return fmt.Errorf("batch %d does not chain to its predecessor", b.Seq)
		}
		prev = b.Hash
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRefusesOtherFormatVersion(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, formatFile), []byte("ledger-format 99\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), Options{Dir: dir})
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "ledger-format 99") {
		t.Fatalf("got %v, want ErrFormat naming the version found", err)
	}
}

func TestSealOnlyFollowSkipsDataBatches(t *testing.T) {
	l := openTest(t, t.TempDir())
	l.SetKeyring(testKeyring(t))
	ctx := context.Background()
	l.Append(ctx, []Event{{Type: "d.v1"}})
	l.Append(ctx, []Event{{Type: "seal.s.v1", Raw: true, Payload: []byte("wrapped")}})
	l.Append(ctx, []Event{{Type: "d.v1"}})
	var types []string
	if err := l.ReadRange(ctx, 1, 0, true, func(b Batch) error {
		for _, e := range b.Events {
			types = append(types, e.Type())
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(types, ",") != "seal.s.v1" {
		t.Fatalf("seal-only read saw %v", types)
	}
}

// TestNoPlaintextOnDisk greps every file under the data dir for the payload marker.
func TestNoPlaintextOnDisk(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	l.SetKeyring(testKeyring(t))
	marker := "MARKER-7f3a9c-plaintext"
	for range 20 {
		if _, err := l.Append(context.Background(), []Event{{Type: "t.v1", Payload: []byte(marker)}}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	assertNotOnDisk(t, dir, marker)
}

func assertNotOnDisk(t *testing.T, dir string, needles ...string) {
	t.Helper()
	files := 0
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("%s holds %q in clear", p, n)
			}
		}
		return nil
	})
	if files == 0 {
		t.Fatal("no files under the data dir: the test would prove nothing")
	}
}

// TestCrashKeepsEveryAcknowledgedAppend runs a child process that appends concurrently and
// prints each acknowledged event id, kills it with SIGKILL mid-stream, and checks after each
// restart that every acknowledged event is in the log exactly once and no event is duplicated.
func TestCrashKeepsEveryAcknowledgedAppend(t *testing.T) {
	if os.Getenv("LEDGER_CRASH_CHILD") != "" {
		t.Skip("child")
	}
	dir := t.TempDir()
	acked := map[string]bool{}
	for round := range 4 {
		killChild(t, "TestCrashChild", []string{"LEDGER_CRASH_CHILD=" + dir}, 300+round*100, ackedLine(acked))
	}
	l := openTest(t, dir)
	count := map[string]int{}
	err := l.ReadRange(context.Background(), 1, 0, false, func(b Batch) error {
		for _, e := range b.Events {
			count[e.hdr.ID]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	storedOnce(t, acked, count)
}

// storedOnce checks a crash test's outcome: every acknowledged id is stored (count) once, and
// no id is stored twice.
func storedOnce(t *testing.T, acked map[string]bool, count map[string]int) {
	t.Helper()
	for id := range acked {
		if count[id] != 1 {
			t.Fatalf("acknowledged event %s stored %d times", id, count[id])
		}
	}
	for id, c := range count {
		if c != 1 {
			t.Fatalf("event %s stored %d times", id, c)
		}
	}
	t.Logf("%d acknowledged, %d stored across the crashes", len(acked), len(count))
}

// TestCrashChild is the child of TestCrashKeepsEveryAcknowledgedAppend.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("LEDGER_CRASH_CHILD")
	if dir == "" {
		t.Skip("only run as the crash test's child")
	}
	l, err := Open(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	l.SetKeyring(testKeyring(t))
	appendAndAck(func(id string) error {
		_, err := l.Append(context.Background(), []Event{{ID: id, Type: "t.v1", Payload: []byte("x")}})
		return err
	})
}

// killChild runs the test named child in a child process with env added, hands each line it
// prints to handle, and kills it (SIGKILL) once handle has counted want acknowledgements; the
// lines printed before the kill landed are handled too. A child that exits first fails t.
func killChild(t *testing.T, child string, env []string, want int, handle func(line string) (acked bool)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+child+"$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	n := 0
	for sc.Scan() {
		if handle(sc.Text()) {
			n++
			if n == want {
				cmd.Process.Kill()
				break
			}
		}
	}
	for sc.Scan() { // what was printed before the kill landed
		handle(sc.Text())
	}
	cmd.Wait()
	if n < want {
		t.Fatalf("%s acknowledged only %d before exiting", child, n)
	}
}

// ackedLine is a killChild handler for appendAndAck's lines: it adds each id to acked.
func ackedLine(acked map[string]bool) func(string) bool {
	return func(line string) bool {
		id, ok := strings.CutPrefix(line, "ACK ")
		if ok {
			acked[id] = true
		}
		return ok
	}
}

// appendAndAck runs 16 goroutines that each append new ids with add and print "ACK <id>" for
// every one acknowledged, until add fails: a crash test's child.
func appendAndAck(add func(id string) error) {
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				id := newID()
				if err := add(id); err != nil {
					return
				}
				mu.Lock()
				fmt.Fprintf(w, "ACK %s\n", id)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestFollowWatchdog: a follower's feed that has been silent for followStall while the stream
// holds more than was delivered is ended as stalled (the runner follows again); one that is
// up to date, or busy applying a batch, is left alone.
func TestFollowWatchdog(t *testing.T) {
	l := openTest(t, t.TempDir())
	l.SetKeyring(testKeyring(t))
	ctx := context.Background()
	for i := range 3 {
		if _, err := l.Append(ctx, []Event{{Type: "test.written.v1", Payload: fmt.Appendf(nil, "e%d", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	last, err := l.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	watch := func(delivered uint64, lastAt int64) error {
		wctx, cancel := context.WithCancelCause(ctx)
		defer cancel(nil)
		var d atomic.Uint64
		var at atomic.Int64
		d.Store(delivered)
		at.Store(lastAt)
		done := make(chan struct{})
		go func() { defer close(done); l.watchFollow(wctx, cancel, false, &d, &at) }()
		select {
		case <-done:
		case <-time.After(2 * followStall):
			cancel(nil)
			<-done
			return nil
		}
		return context.Cause(wctx)
	}
	silent := time.Now().Add(-2 * followStall).UnixNano()
	if err := watch(last-1, silent); !errors.Is(err, errFollowStalled) {
		t.Fatalf("silent and behind: %v, want stalled", err)
	}
	if err := watch(last, silent); err != nil {
		t.Fatalf("silent but up to date: ended with %v", err)
	}
	if err := watch(last-1, 0); err != nil {
		t.Fatalf("behind while applying a batch: ended with %v", err)
	}
}

// TestSealEventHeaderBound: the header's size bound holds for long and multi-byte fields and
// extreme times, and a sealed event's header decodes and its payload opens (the header and its
// associated data share one buffer).
func TestSealEventHeaderBound(t *testing.T) {
	kr, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("é", 300)
	for _, e := range []Event{
		{ID: "a", Type: "t", Time: time.Unix(0, 0)},
		{ID: newID(), Type: long, Subject: long, Actor: long, Request: long, Time: time.Unix(1<<40, 0), Payload: []byte("p")},
		{ID: "", Type: "", Time: time.Unix(0, -1<<62), Payload: []byte(long)},
	} {
		h := header{ID: e.ID, Type: e.Type, Subject: e.Subject, Actor: e.Actor, Request: e.Request, Time: e.Time.UnixNano(), Term: 1<<32 - 1}
		if n := len(h.encode(nil)); n > h.encodedSizeBound() {
			t.Fatalf("header encodes to %d bytes, bound %d", n, h.encodedSizeBound())
		}
		se, err := sealEvent(&e, kr)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := decodeHeader(se.rawHdr); !ok || got != se.hdr {
			t.Fatalf("header %+v decodes to %+v %v", se.hdr, got, ok)
		}
		rec, err := se.Open(kr, Position{Seq: 1})
		if err != nil || string(rec.Payload) != string(e.Payload) || rec.Type != e.Type {
			t.Fatalf("open: %v %q", err, rec.Payload)
		}
	}
}
