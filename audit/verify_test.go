package audit

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

func openLog(t *testing.T) (*ledger.Log, *ledger.Keyring) {
	t.Helper()
	l, err := ledger.Open(context.Background(), ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	k := testKeyring(t)
	l.SetKeyring(k)
	for i := range 8 {
		if _, err := l.Append(context.Background(), []ledger.Event{{Type: "test.written.v1", Subject: "t.x", Payload: []byte{byte(i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	return l, k
}

func TestVerifyIntactAndFrom(t *testing.T) {
	l, k := openLog(t)
	ctx := context.Background()
	rep, err := Verify(ctx, l.JetStream(), ledger.StreamName, VerifyOptions{Keyring: k})
	if err != nil || !rep.OK || rep.Batches != 8 || rep.Events != 8 || rep.From != 1 || rep.To != 8 {
		t.Fatalf("intact: %+v %v", rep, err)
	}
	// From 5: only with a checkpoint for 4.
	if _, err := Verify(ctx, l.JetStream(), ledger.StreamName, VerifyOptions{From: 5}); err == nil || !strings.Contains(err.Error(), "no checkpoint") {
		t.Fatalf("unvouched from: %v", err)
	}
	st, _ := l.JetStream().Stream(ctx, ledger.StreamName)
	m4, _ := st.GetMsg(ctx, 4)
	b4, _ := ledger.DecodeBatch(4, m4.Data)
	rep, err = Verify(ctx, l.JetStream(), ledger.StreamName, VerifyOptions{From: 5, Checkpoints: []Checkpoint{{Seq: 4, Hash: HashHex(b4.Hash)}}})
	if err != nil || !rep.OK || rep.Batches != 4 || rep.Trusted == nil {
		t.Fatalf("from 5: %+v %v", rep, err)
	}
	// A checkpoint that does not match is an alteration.
	rep, _ = Verify(ctx, l.JetStream(), ledger.StreamName, VerifyOptions{Checkpoints: []Checkpoint{{Seq: 4, Hash: strings.Repeat("0", 64)}}})
	if rep.OK || rep.FirstBad != 4 || rep.Problems[0].Kind != "altered" {
		t.Fatalf("bad checkpoint: %+v", rep)
	}
	// So is a head this node applied that hashes differently now.
	rep, _ = Verify(ctx, l.JetStream(), ledger.StreamName, VerifyOptions{HeadSeq: 8})
	if rep.OK || rep.FirstBad != 8 {
		t.Fatalf("head mismatch: %+v", rep)
	}
}

// A batch re-published at the end (deleted and stored again) is named as missing where it was
// and as out of place where it is now.
func TestVerifyRepublishedCopy(t *testing.T) {
	l, k := openLog(t)
	ctx := context.Background()
	js := l.JetStream()
	st, _ := js.Stream(ctx, ledger.StreamName)
	info, _ := st.Info(ctx)
	var msgs []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= 8; seq++ {
		m, _ := st.GetMsg(ctx, seq)
		msgs = append(msgs, m)
	}
	js.DeleteStream(ctx, ledger.StreamName)
	cfg := info.Config
	cfg.DenyDelete = false
	st, err := createStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range append(msgs, msgs[2]) { // seq 3 again, as seq 9
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data}); err != nil {
			t.Fatal(err)
		}
	}
	st.DeleteMsg(ctx, 3)
	rep, err := Verify(ctx, js, ledger.StreamName, VerifyOptions{Keyring: k})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK || rep.FirstBad != 3 || len(rep.Problems) != 2 || rep.Problems[0].Kind != "missing" ||
		rep.Problems[1].Seq != 9 || !strings.Contains(rep.Problems[1].Detail, "chains to seq 2") {
		t.Fatalf("report: %+v", rep)
	}
	// A missing tail is named too.
	st.DeleteMsg(ctx, 9)
	rep, _ = Verify(ctx, js, ledger.StreamName, VerifyOptions{Keyring: k})
	if rep.FirstBad != 3 || rep.Problems[len(rep.Problems)-1].Seq != 9 || rep.Problems[len(rep.Problems)-1].Kind != "missing" {
		t.Fatalf("missing tail: %+v", rep)
	}
}

// createStream creates a stream just deleted; the server may need a moment to let go of the
// old one's store.
func createStream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	for i := 0; ; i++ {
		st, err := js.CreateStream(ctx, cfg)
		if err == nil || i == 50 {
			return st, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}
