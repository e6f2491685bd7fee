package ledger

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// link is a TCP proxy for one direction of the cluster's routes; cutting it drops its
// connections and refuses new ones, as a network partition does.
type link struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	cut   bool
	conns []net.Conn
}

func newLink(t *testing.T, to string) *link {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k := &link{ln: ln, to: to}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			k.mu.Lock()
			if k.cut {
				k.mu.Unlock()
				c.Close()
				continue
			}
			d, err := net.Dial("tcp", to)
			if err != nil {
				k.mu.Unlock()
				c.Close()
				continue
			}
			k.conns = append(k.conns, c, d)
			k.mu.Unlock()
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	return k
}

func (k *link) setCut(cut bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.cut = cut
	if cut {
		for _, c := range k.conns {
			c.Close()
		}
		k.conns = nil
	}
}

func TestHAPartitionedActiveAcksNothing(t *testing.T) {
	// The active node is cut off from both other members (every route between them goes
	// through a proxy, and the cut drops and refuses its connections); it keeps appending from
	// several goroutines. It must acknowledge none of the appends it starts after the cut (the
	// count is logged), demote itself within the TTL, and the majority must elect another active
	// that accepts writes. After healing, the old node is a standby holding the same log: no fork.
	dir := t.TempDir()
	ports := freePorts(t, 3)
	// links[i][j] carries node i's route to node j.
	links := make([][]*link, 3)
	for i := range 3 {
		links[i] = make([]*link, 3)
		for j := range 3 {
			if i != j {
				links[i][j] = newLink(t, fmt.Sprintf("127.0.0.1:%d", ports[j]))
			}
		}
	}
	// nowhere(i) is an address that accepts and drops connections, advertised as node i's route
	// address, so no member can use it.
	nowhere := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	logs := make([]*Log, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		var routes []string
		for j := range 3 {
			if i != j {
				routes = append(routes, "nats://"+links[i][j].ln.Addr().String())
			}
		}
		// NATS gossips each new route's address to the other members, which then connect to it
		// directly (an implicit route) unless they already have one: taken from the route's TCP
		// peer and the listen port, that address bypasses the proxies, and a route made through
		// it survives the cut. Advertising a closed port leaves the proxied routes the only ones.
		o := Options{Dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), Replicas: 3, NodeName: fmt.Sprintf("n%d", i+1),
			Cluster: &ClusterOptions{Name: "test", Listen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
				Advertise: nowhere(), NoAdvertise: true}}
		wg.Go(func() { logs[i], errs[i] = Open(context.Background(), o) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open n%d: %v", i+1, err)
		}
		t.Cleanup(func() { logs[i].Close() })
	}
	k := testKeyring(t)
	const ttl = 3 * time.Second
	var nodes []*haNode
	for i, l := range logs {
		l.SetKeyring(k)
		el, err := l.NewElector(context.Background(), ElectorOptions{Node: fmt.Sprintf("n%d", i+1), TTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		el.Start()
		t.Cleanup(func() { el.Stop(context.Background()) })
		nodes = append(nodes, &haNode{log: l, el: el})
	}
	active := waitActive(t, nodes, nil, 30*time.Second)

	// The old active keeps trying to write, from several goroutines, before and after the cut.
	var cutAt atomic.Pointer[time.Time]
	var ackedAfterCut, ackedBefore atomic.Int64
	var mu sync.Mutex
	acked := map[string]int{}
	stop := make(chan struct{})
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				p := fmt.Sprintf("old-%d-%d", w, j)
				started := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := nodes[active].log.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte(p)}})
				cancel()
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked[p]++
				mu.Unlock()
				if c := cutAt.Load(); c != nil && started.After(*c) {
					ackedAfterCut.Add(1)
				} else {
					ackedBefore.Add(1)
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	now := time.Now()
	cutAt.Store(&now)
	for j := range 3 {
		if j != active {
			links[active][j].setCut(true)
			links[j][active].setCut(true)
		}
	}
	t.Logf("cut n%d off from the majority", active+1)
	// The cut must really cut: the old active sees no other member, the majority sees only
	// itself. (A route left over outside the proxies once let writes through.)
	cutErr := func() error {
		if p := nodes[active].log.ClusterPeers(); len(p) != 1 {
			return fmt.Errorf("the cut-off n%d still has routes: %v", active+1, p)
		}
		for j := range 3 {
			if p := nodes[j].log.ClusterPeers(); j != active && slices.Contains(p, fmt.Sprintf("n%d", active+1)) {
				return fmt.Errorf("n%d still has a route to the cut-off n%d: %v", j+1, active+1, p)
			}
		}
		return nil
	}
	// The servers notice the dropped connections when they next read from them.
	for cutDeadline := time.Now().Add(10 * time.Second); cutErr() != nil; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(cutDeadline) {
			t.Fatal(cutErr())
		}
	}

	// The majority elects a new active, which accepts writes.
	dead := map[int]bool{active: true}
	next := waitActive(t, nodes, dead, 15*time.Second)
	_, nextEpoch := nodes[next].el.Active()
	t.Logf("n%d active on the majority side %s after the cut", next+1, time.Since(now).Round(time.Millisecond))
	deadline := time.Now().Add(20 * time.Second)
	for try := 0; ; try++ {
		// An attempt that times out may still be stored: each carries its own payload.
		p := fmt.Sprintf("majority-%d", try)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := nodes[next].log.Append(ctx, []Event{{Type: "test.written.v1", Payload: []byte(p)}})
		cancel()
		if err == nil {
			mu.Lock()
			acked[p]++
			mu.Unlock()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("majority's active n%d accepts no write: %v", next+1, err)
		}
	}
	// The cut-off node demoted itself within the TTL of the cut: its last renewal was sent before
	// the cut, and it counts itself active only until TTL/2 after sending one.
	time.Sleep(time.Until(now.Add(ttl)))
	if ok, _ := nodes[active].el.Active(); ok {
		t.Errorf("the cut-off node still believes it is active %s after the cut", ttl)
	}
	time.Sleep(time.Second) // the old node keeps trying meanwhile
	close(stop)
	writers.Wait()
	if err := cutErr(); err != nil {
		t.Fatalf("the partition did not hold: %v", err)
	}
	t.Logf("writes acknowledged by the partitioned node after the cut: %d (before: %d)", ackedAfterCut.Load(), ackedBefore.Load())
	if n := ackedAfterCut.Load(); n != 0 {
		t.Errorf("the partitioned node acknowledged %d writes after the cut", n)
	}

	// Heal: the old node rejoins as a standby and holds the same log, no fork.
	for j := range 3 {
		if j != active {
			links[active][j].setCut(false)
			links[j][active].setCut(false)
		}
	}
	// Caught up: every member's own replica of the stream ends at the same sequence, and the
	// log read through each member is the same chain of batches (same hashes), holding every
	// acknowledged write exactly once. A member that just rejoined answers 503 for a moment while
	// its JetStream catches up: retried until the deadline.
	deadline = time.Now().Add(60 * time.Second)
	var lastErr error
	for {
		lastErr = sameLog(nodes, k, acked)
		if lastErr == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rejoined node did not catch up within 60s: %v", lastErr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The rejoined node may win a later election (the heal can make the majority's active miss a
	// renewal), but only with a newer epoch: never as the term it held before the cut.
	if ok, epoch := nodes[active].el.Active(); ok && epoch <= nextEpoch {
		t.Errorf("the rejoined n%d is active under epoch %d, not newer than the majority's %d", active+1, epoch, nextEpoch)
	}
}

// localLastSeq is the last sequence of l's own replica of the log stream (not the leader's).
func localLastSeq(l *Log) (uint64, error) {
	acc, err := l.ns.JszAccount(&server.JSzOptions{Account: server.DEFAULT_GLOBAL_ACCOUNT, Streams: true})
	if err != nil {
		return 0, err
	}
	for _, st := range acc.Streams {
		if st.Name == StreamName {
			return st.State.LastSeq, nil
		}
	}
	return 0, fmt.Errorf("%s holds no replica of %s", l.ns.Name(), StreamName)
}

// sameLog reports how the members' logs differ (nil: they are the same, with every acknowledged
// write exactly once).
func sameLog(nodes []*haNode, k *Keyring, acked map[string]int) error {
	var chains [3]string
	for i, n := range nodes {
		seq, err := localLastSeq(n.log)
		if err != nil {
			return err
		}
		var chain []string
		seen := map[string]int{}
		err = n.log.ReadRange(context.Background(), 1, 0, false, func(b Batch) error {
			chain = append(chain, fmt.Sprintf("%d:%x", b.Seq, b.Hash[:8]))
			for j, se := range b.Events {
				r, err := se.Open(k, Position{Seq: b.Seq, Index: uint32(j)})
				if err != nil {
					return err
				}
				seen[string(r.Payload)]++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("n%d: read: %w", i+1, err)
		}
		if n := len(chain); n == 0 || !strings.HasPrefix(chain[n-1], fmt.Sprintf("%d:", seq)) {
			return fmt.Errorf("n%d: its replica ends at %d, the log read through it at %v", i+1, seq, chain[max(n-1, 0):])
		}
		for p := range acked {
			if seen[p] != 1 {
				return fmt.Errorf("n%d: acknowledged write %s stored %d times", i+1, p, seen[p])
			}
		}
		chains[i] = strings.Join(chain, " ")
	}
	for i := 1; i < 3; i++ {
		if chains[i] != chains[0] {
			return fmt.Errorf("n%d's log differs from n1's: fork", i+1)
		}
	}
	return nil
}
