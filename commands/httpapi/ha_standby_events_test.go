package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// eventSink is one node's own NATS server for change events (not clustered), and what arrived
// on it: which node published an event is which sink received it.
type eventSink struct {
	srv  *server.Server
	mu   sync.Mutex
	msgs map[string]int // data_path -> deliveries
	n    int
}

func newEventSink(t *testing.T) *eventSink {
	t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatal("event sink NATS server not ready")
	}
	t.Cleanup(srv.Shutdown)
	s := &eventSink{srv: srv, msgs: map[string]int{}}
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe("ledger.events.>", func(m *nats.Msg) {
		var ev wsEvent
		json.Unmarshal(m.Data, &ev)
		s.mu.Lock()
		s.msgs[ev.Data.Event.Metadata["data_path"]]++
		s.n++
		s.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *eventSink) count(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[path]
}

func (s *eventSink) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// TestHAStandbyEventsActiveOnly: change events are published by the active node only (each
// node publishes to its own NATS server here, so the server that receives an event names the
// publisher); after the active node is stopped its successor resumes from the log's durable
// cursor: every change, including those committed just before the stop, is published, none
// skipped, and nothing reaches the standby's server.
func TestHAStandbyEventsActiveOnly(t *testing.T) {
	sinks := []*eventSink{newEventSink(t), newEventSink(t), newEventSink(t)}
	nodes := startHAClusterWith(t, httpapi.Options{}, func(i int, o *commands.Options) {
		o.Events = commands.EventsOptions{NATSPrefix: "ledger.events", NATSURL: sinks[i].srv.ClientURL()}
	})
	init := initHACluster(t, nodes)
	act := activeIndex(nodes, -1)
	root := haClient(t, nodes[act].url, init.RootToken)
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	put := func(c *vault.Client, path string) error {
		_, err := c.KVv2("secret").Put(context.Background(), path, map[string]any{"v": "1"})
		return err
	}
	waitFor := func(what string, d time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(d)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s (sinks: %d %d %d)", what, d, sinks[0].total(), sinks[1].total(), sinks[2].total())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range 10 {
		if err := put(root, fmt.Sprintf("before/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor("the active node publishes", 60*time.Second, func() bool {
		for i := range 10 {
			if sinks[act].count(fmt.Sprintf("secret/data/before/%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	for i, s := range sinks {
		if i != act && s.total() != 0 {
			t.Fatalf("standby node%d published %d events", i+1, s.total())
		}
	}
	// Committed just before the stop, perhaps not yet published by the stopped node.
	for i := range 5 {
		if err := put(root, fmt.Sprintf("edge/%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	nodes[act].stop()
	var next int
	waitFor("a new active node", 30*time.Second, func() bool { next = activeIndex(nodes, act); return next >= 0 })
	other := 3 - act - next
	c := haClient(t, nodes[next].url, init.RootToken)
	for i := range 10 {
		path := fmt.Sprintf("after/%d", i)
		waitFor("write "+path, 30*time.Second, func() bool { return put(c, path) == nil })
	}
	published := func(path string) int { return sinks[act].count(path) + sinks[next].count(path) }
	waitFor("every change published across the failover", 60*time.Second, func() bool {
		for _, p := range []string{"before", "edge", "after"} {
			for i := range 5 {
				if published(fmt.Sprintf("secret/data/%s/%d", p, i)) == 0 {
					return false
				}
			}
		}
		for i := 5; i < 10; i++ {
			if published(fmt.Sprintf("secret/data/after/%d", i)) == 0 {
				return false
			}
		}
		return true
	})
	for i := range 10 {
		if n := sinks[next].count(fmt.Sprintf("secret/data/after/%d", i)); n != 1 {
			t.Fatalf("after/%d published %d times by the new active node", i, n)
		}
		if n := sinks[act].count(fmt.Sprintf("secret/data/before/%d", i)) + sinks[next].count(fmt.Sprintf("secret/data/before/%d", i)); n < 1 {
			t.Fatalf("before/%d not published", i)
		}
	}
	if n := sinks[other].total(); n != 0 {
		t.Fatalf("the remaining standby node%d published %d events", other+1, n)
	}
	repeats := 0
	for _, p := range []string{"before", "edge"} {
		for i := range 10 {
			if n := published(fmt.Sprintf("secret/data/%s/%d", p, i)); n > 1 {
				repeats += n - 1
			}
		}
	}
	t.Logf("active node%d stopped, node%d published on; repeats (same Nats-Msg-Id) of events the stopped node had not acknowledged: %d", act+1, next+1, repeats)
}
