package audit

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// TestVerifyPerSubjectChains: the nodes of a cluster each append to the audit stream on their
// own subject, chained per subject, concurrently and without refusing each other's batches;
// Verify with ChainPerSubject finds the stream intact (and a whole-stream chain check does
// not: the batches interleave); a batch deleted from the middle is found missing, and a
// batch replaced by a copy of an earlier one of its subject is found out of place.
func TestVerifyPerSubjectChains(t *testing.T) {
	l, k := openLog(t)
	ctx := context.Background()
	js := l.JetStream()
	const name, per = "TEST_AUDIT_PS", 20
	subjects := []string{NodeSubject("node1"), NodeSubject("node2"), NodeSubject("node.3")}
	var writers []*ledger.Stream
	for _, subj := range subjects {
		s, err := ledger.OpenStream(ctx, js, ledger.StreamConfig{Name: name, Subject: subj, Subjects: []string{"ledger_audit.batch", "ledger_audit.batch.>"}, ChainPerSubject: true},
			func() *ledger.Keyring { return k })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		writers = append(writers, s)
	}
	// Interleaved for certain, then concurrently.
	for i := range 3 {
		for w, s := range writers {
			if _, err := s.Append(ctx, []ledger.Event{{Type: "audit.test.v1", Payload: fmt.Appendf(nil, "seq %d-%d", w, i)}}); err != nil {
				t.Fatalf("writer %d: %v", w, err)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(writers)*per)
	for w, s := range writers {
		wg.Go(func() {
			for i := range per - 3 {
				if _, err := s.Append(ctx, []ledger.Event{{Type: "audit.test.v1", Payload: fmt.Appendf(nil, "con %d-%d", w, i)}}); err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rep, err := Verify(ctx, js, name, VerifyOptions{Keyring: k, ChainPerSubject: true})
	if err != nil || !rep.OK || rep.Batches != uint64(len(writers)*per) {
		t.Fatalf("per-subject chains: %+v %v", rep, err)
	}
	if rep, _ := Verify(ctx, js, name, VerifyOptions{Keyring: k}); rep.OK {
		t.Fatal("a whole-stream chain check passed batches that interleave: the writers did not interleave")
	}
	if _, err := Verify(ctx, js, name, VerifyOptions{From: 5, ChainPerSubject: true}); err == nil {
		t.Fatal("a per-subject verification from the middle was accepted")
	}

	// Rebuild the stream as an attacker would: without one batch, and with another one of
	// node1's replaced by a copy of node1's first batch.
	st, _ := js.Stream(ctx, name)
	info, _ := st.Info(ctx)
	var msgs []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	victim := uint64(len(msgs) / 2)
	// The forged one is node1's second batch after the gap: after a gap the first batch of
	// each subject cannot be checked (the missing batch may have been its predecessor).
	var first1, forged uint64
	after := 0
	for _, m := range msgs {
		if m.Subject != subjects[0] {
			continue
		}
		if first1 == 0 {
			first1 = m.Sequence
		}
		if m.Sequence > victim {
			if after++; after == 2 {
				forged = m.Sequence
			}
		}
	}
	if forged == 0 {
		t.Fatalf("node1 has fewer than two batches after seq %d", victim)
	}
	for _, w := range writers {
		w.Close()
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.DenyDelete = false
	if st, err = createStream(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		data := m.Data
		if m.Sequence == forged {
			data = msgs[first1-1].Data
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.DeleteMsg(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(ctx, js, name, VerifyOptions{ChainPerSubject: true})
	if err != nil || rep.OK || rep.FirstBad != victim || len(rep.Problems) < 2 {
		t.Fatalf("tampered stream: %+v %v", rep, err)
	}
	if p := rep.Problems[0]; p.Kind != "missing" || p.Seq != victim {
		t.Errorf("first problem %+v, want seq %d missing", p, victim)
	}
	found := false
	for _, p := range rep.Problems[1:] {
		found = found || (p.Seq == forged && p.Kind == "unchained")
	}
	if !found {
		t.Errorf("the forged copy at seq %d is not reported: %+v", forged, rep.Problems)
	}
}
