package ledger

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type haNode struct {
	log *Log
	el  *Elector
}

func startHA(t *testing.T, ttl time.Duration) []*haNode {
	t.Helper()
	logs := openCluster3(t)
	k := testKeyring(t)
	var nodes []*haNode
	for i, l := range logs {
		l.SetKeyring(k)
		el, err := l.NewElector(context.Background(), ElectorOptions{Node: fmt.Sprintf("n%d", i+1), APIAddr: fmt.Sprintf("http://n%d", i+1), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		el.Start()
		t.Cleanup(func() { el.Stop(context.Background()) })
		nodes = append(nodes, &haNode{log: l, el: el})
	}
	return nodes
}

// waitActive polls until exactly one of the live nodes is active and returns its index.
func waitActive(t *testing.T, nodes []*haNode, dead map[int]bool, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		var act []int
		for i, n := range nodes {
			if ok, _ := n.el.Active(); ok && !dead[i] {
				act = append(act, i)
			}
		}
		if len(act) > 1 {
			t.Fatalf("two active nodes at once: %v", act)
		}
		if len(act) == 1 {
			return act[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no active node within %s", within)
	return -1
}

// storm appends from every live node until stop; standbys must refuse with ErrNotActive. It
// returns the payloads acknowledged, by node.
func storm(nodes []*haNode, dead *sync.Map, stop <-chan struct{}) (func() map[string]int, *atomic.Int64) {
	var mu sync.Mutex
	acked := map[string]int{}
	var wrongErr atomic.Int64
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, d := dead.Load(i); d {
					return
				}
				p := fmt.Sprintf("n%d-%d", i+1, j)
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				_, err := n.log.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte(p)}})
				cancel()
				if err == nil {
					mu.Lock()
					acked[p]++
					mu.Unlock()
				} else if !errors.Is(err, ErrNotActive) {
					wrongErr.Add(1)
					time.Sleep(10 * time.Millisecond)
				} else {
					time.Sleep(5 * time.Millisecond)
				}
			}
		})
	}
	return func() map[string]int {
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		return acked
	}, &wrongErr
}

// checkExactlyOnce reads the whole log on node n and checks every acknowledged payload is
// there exactly once.
func checkExactlyOnce(t *testing.T, n *haNode, k *Keyring, acked map[string]int) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range readAll(t, n.log, k) {
		seen[string(r.Payload)]++
	}
	for p := range acked {
		if seen[p] != 1 {
			t.Errorf("%s: acknowledged write %s stored %d times", n.el.o.Node, p, seen[p])
		}
	}
}

func TestHAKillActiveUnderWrites(t *testing.T) {
	nodes := startHA(t, 3*time.Second)
	first := waitActive(t, nodes, nil, 15*time.Second)
	var dead sync.Map
	stop := make(chan struct{})
	wait, other := storm(nodes, &dead, stop)
	time.Sleep(500 * time.Millisecond)

	// Kill the active node: its NATS server goes with it, the lease is not resigned.
	dead.Store(first, true)
	killed := time.Now()
	nodes[first].el.mu.Lock()
	nodes[first].el.cancel() // no resign: the lease must expire
	nodes[first].el.cancel = nil
	nodes[first].el.mu.Unlock()
	nodes[first].log.shutdownConn()
	next := waitActive(t, nodes, map[int]bool{first: true}, 15*time.Second)
	failover := time.Since(killed)
	// The new active accepts writes.
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := nodes[next].log.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("after")}})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("new active n%d accepts no write: %v", next+1, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("kill -9 of n%d: n%d active and writing after %s", first+1, next+1, time.Since(killed).Round(time.Millisecond))
	if failover > 15*time.Second {
		t.Errorf("failover took %s", failover)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	acked := wait()
	acked["after"] = 1
	if len(acked) < 2 {
		t.Fatalf("only %d writes acknowledged", len(acked))
	}
	t.Logf("%d writes acknowledged; %d non-standby errors", len(acked), other.Load())
	k := nodes[next].log.Keyring()
	for i, n := range nodes {
		if i != first {
			checkExactlyOnce(t, n, k, acked)
		}
	}
}

func TestHAStepDownIsQuick(t *testing.T) {
	nodes := startHA(t, 6*time.Second)
	first := waitActive(t, nodes, nil, 15*time.Second)
	start := time.Now()
	if err := nodes[first].el.StepDown(context.Background(), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, _ := nodes[first].el.Active(); ok {
		t.Fatal("still active after step-down")
	}
	// Campaigns run every TTL/6; nudge none: the graceful path must be quick on its own.
	next := waitActive(t, nodes, map[int]bool{first: true}, 2*time.Second)
	if next == first {
		t.Fatal("the node that stepped down took the lease back")
	}
	t.Logf("step-down: n%d active after %s", next+1, time.Since(start).Round(time.Millisecond))
	if _, err := nodes[first].log.Append(context.Background(), []Event{{Type: "test.written.v1", Payload: []byte("x")}}); !errors.Is(err, ErrNotActive) {
		t.Fatalf("a standby appended: %v", err)
	}
}

// TestLogLeaseEndedInFlightNotAcknowledged: a batch that left while the write gate was open but
// whose acknowledgement came back after the gate closed (a node paused or starved past its
// lease) is stored, yet answered as an unknown outcome, never as a success; the writer's chain
// goes on after it.
func TestLogLeaseEndedInFlightNotAcknowledged(t *testing.T) {
	l := openTest(t, t.TempDir())
	l.SetKeyring(testKeyring(t))
	var calls atomic.Int32
	var closeAfter atomic.Int32 // the gate call from which the lease is gone (0: never)
	gate := func() (uint64, error) {
		n := calls.Add(1)
		if c := closeAfter.Load(); c > 0 && n >= c {
			return 0, ErrNotActive
		}
		return 7, nil
	}
	l.gate.Store(&gate)
	ctx := context.Background()
	if _, err := l.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("before")}}); err != nil {
		t.Fatalf("append with the lease held: %v", err)
	}
	before, err := l.LastSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// store asks the gate once, publish once before sending, once after the acknowledgement:
	// the third call of the next append is the first after the batch was stored.
	calls.Store(0)
	closeAfter.Store(3)
	_, err = l.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("in flight")}})
	if err == nil || errors.Is(err, ErrNotActive) || !strings.Contains(err.Error(), "outcome unknown") {
		t.Fatalf("append whose lease ended in flight: %v; want an unknown outcome (not a success, not ErrNotActive)", err)
	}
	if after, _ := l.LastSeq(ctx); after != before+1 {
		t.Fatalf("the batch in flight is not stored: last seq %d, was %d", after, before)
	}
	// The lease is back (same term): the next batch chains after the one in flight.
	closeAfter.Store(0)
	if _, err := l.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("after")}}); err != nil {
		t.Fatalf("append after the unknown outcome: %v", err)
	}
	if after, _ := l.LastSeq(ctx); after != before+2 {
		t.Fatalf("last seq %d, want %d", after, before+2)
	}
}

// TestLogTermBeginsWhereTheStreamEnds: a writer whose term was not begun with BeginTerm
// refuses its first batch when another writer appended since its own last one (the batch was
// decided on views that may lack those batches); BeginTerm takes up the chain at the stream's
// end and reports it; a deposed writer's batch landing after that makes the next append fail
// with ErrConflict, nothing stored, and raises Floor.
func TestLogTermBeginsWhereTheStreamEnds(t *testing.T) {
	logs := openCluster3(t)
	k := testKeyring(t)
	ctx := context.Background()
	var epochA, epochB atomic.Uint64 // 0: not active
	gateOf := func(e *atomic.Uint64) *func() (uint64, error) {
		g := func() (uint64, error) {
			if v := e.Load(); v != 0 {
				return v, nil
			}
			return 0, ErrNotActive
		}
		return &g
	}
	a, b := logs[0], logs[1]
	a.SetKeyring(k)
	b.SetKeyring(k)
	a.gate.Store(gateOf(&epochA))
	b.gate.Store(gateOf(&epochB))
	a.held.Store(nil)
	b.held.Store(nil)
	last := func() uint64 {
		t.Helper()
		s, err := a.LastSeq(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	appendAs := func(l *Log, p string) error {
		_, err := l.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte(p)}})
		return err
	}

	epochA.Store(1)
	if _, err := a.BeginTerm(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := appendAs(a, "a1"); err != nil {
		t.Fatalf("a1: %v", err)
	}
	// B is elected (epoch 2) and appends without beginning its term.
	epochA.Store(0)
	epochB.Store(2)
	before := last()
	if err := appendAs(b, "b1"); !errors.Is(err, ErrConflict) {
		t.Fatalf("first batch of a term not begun, after another writer appended: %v, want ErrConflict", err)
	}
	if got := last(); got != before {
		t.Fatalf("the refused batch was stored: last seq %d, was %d", got, before)
	}
	if b.Floor() != before {
		t.Fatalf("floor %d after taking up the chain, want %d", b.Floor(), before)
	}
	if err := appendAs(b, "b2"); err != nil {
		t.Fatalf("b2, after the chain was taken up: %v", err)
	}

	// A is elected again (epoch 3) and begins its term where the stream ends.
	epochA.Store(3)
	begin, err := a.BeginTerm(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if begin != last() || a.Floor() != begin {
		t.Fatalf("BeginTerm at %d (floor %d), the stream ends at %d", begin, a.Floor(), last())
	}
	// B, deposed, still has a batch in flight under its old term: it lands after A's beginning.
	if err := appendAs(b, "b3"); err != nil {
		t.Fatalf("b3: %v", err)
	}
	deposed := last()
	if err := appendAs(a, "a2"); !errors.Is(err, ErrConflict) {
		t.Fatalf("append after a deposed writer's batch landed: %v, want ErrConflict", err)
	}
	if got := last(); got != deposed || a.Floor() != deposed {
		t.Fatalf("after the refusal: last seq %d (want %d), floor %d", got, deposed, a.Floor())
	}
	epochB.Store(0)
	if err := appendAs(a, "a3"); err != nil {
		t.Fatalf("a3: %v", err)
	}
	// Events decided in term 3 are not stored once the node is in term 5 (it lost the lease
	// and won it again: others may have written meanwhile); events of term 5 are.
	epochA.Store(5)
	if _, err := a.BeginTerm(ctx, 5); err != nil {
		t.Fatal(err)
	}
	before = last()
	if _, err := a.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("stale")}}, InTerm(3)); !errors.Is(err, ErrConflict) {
		t.Fatalf("events decided in an earlier term: %v, want ErrConflict", err)
	}
	if got := last(); got != before {
		t.Fatalf("events of an earlier term were stored: last seq %d, was %d", got, before)
	}
	if _, err := a.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte("a4")}}, InTerm(5)); err != nil {
		t.Fatalf("events of the current term: %v", err)
	}
	var got []string
	for _, r := range readAll(t, a, k) {
		got = append(got, string(r.Payload))
	}
	if want := "a1 b2 b3 a3 a4"; strings.Join(got, " ") != want {
		t.Fatalf("log holds %q, want %q", strings.Join(got, " "), want)
	}
}
