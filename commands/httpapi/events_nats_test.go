package httpapi_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ledger-secrets/ledger/commands"
)

// TestEventsOnNATS: with a subject prefix set, the node publishes each committed change on
// <prefix>.<type>, in Vault's event shape with the event id as Nats-Msg-Id, in log order.
func TestEventsOnNATS(t *testing.T) {
	s := startServerWith(t, commands.Options{Events: commands.EventsOptions{NATSPrefix: "ledger.events"}})
	root := s.Client(t, s.RootToken)
	nc := s.Log.JetStream().Conn()
	msgs := make(chan *nats.Msg, 64)
	sub, err := nc.ChanSubscribe("ledger.events.>", msgs)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The publisher's consumer starts at what is committed after it starts: wait until a
	// first write is seen, then check the ones after it, in order.
	deadline := time.Now().Add(20 * time.Second)
	seen := false
	for i := 0; !seen && time.Now().Before(deadline); i++ {
		kvPut(t, root, fmt.Sprintf("warm/%d", i))
		select {
		case <-msgs:
			seen = true
		case <-time.After(500 * time.Millisecond):
		}
	}
	if !seen {
		t.Fatal("no event on NATS")
	}
	for len(msgs) > 0 {
		<-msgs
	}
	kvPut(t, root, "n/one")
	if err := root.KVv2("secret").Delete(t.Context(), "n/one"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ subject, path string }{
		{"ledger.events.kv-v2.data-write", "secret/data/n/one"},
		{"ledger.events.kv-v2.data-delete", "secret/data/n/one"},
	} {
		var m *nats.Msg
		for m == nil {
			select {
			case got := <-msgs:
				var ev wsEvent
				json.Unmarshal(got.Data, &ev)
				if ev.Data.Event.Metadata["data_path"] == "secret/data/n/one" {
					m = got
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no event on %s", want.subject)
			}
		}
		var ev wsEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		if m.Subject != want.subject || ev.Data.Event.Metadata["data_path"] != want.path || m.Header.Get(nats.MsgIdHdr) != ev.ID || ev.ID == "" {
			t.Fatalf("got %s %s (msg id %q)", m.Subject, m.Data, m.Header.Get(nats.MsgIdHdr))
		}
	}
}
