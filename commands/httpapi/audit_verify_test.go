package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/minio/highwayhash"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/ledger"
)

// verifyLog calls sys/ledger/audit/verify and returns its "log" report.
func verifyLog(t *testing.T, s *testServer, from uint64) (bool, map[string]any) {
	t.Helper()
	q := ""
	if from > 0 {
		q = fmt.Sprintf("?from=%d", from)
	}
	r := raw(t, s.URL, "GET", "sys/ledger/audit/verify"+q, nil, tokenHeader(s.RootToken))
	if r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, trunc(r.Body))
	}
	data := r.json(t)["data"].(map[string]any)
	rep := data["log"].(map[string]any)
	return data["ok"] == true, rep
}

func writeSome(t *testing.T, s *testServer, prefix string, n int) {
	t.Helper()
	root := s.Client(t, s.RootToken)
	for i := range n {
		if _, err := root.KVv2("secret").Put(t.Context(), fmt.Sprintf("%s/%d", prefix, i), map[string]any{"v": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditVerifyDeletedMessage: verify passes on an untouched log; an attacker with a raw
// JetStream connection lifts DenyDelete and deletes a batch; verify fails naming it.
func TestAuditVerifyDeletedMessage(t *testing.T) {
	s := startServer(t)
	writeSome(t, s, "v", 10)
	if ok, rep := verifyLog(t, s, 0); !ok || rep["first_bad_seq"] != nil {
		t.Fatalf("untouched log does not verify: %v", rep)
	}
	// Non-sudo tokens may not verify.
	root := s.Client(t, s.RootToken)
	putPolicy(t, root, "reader", `path "sys/ledger/audit/*" { capabilities = ["read"] }`)
	limited := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"reader"}})
	if r := raw(t, s.URL, "GET", "sys/ledger/audit/verify", nil, tokenHeader(limited.ClientToken)); r.Status != 403 {
		t.Fatalf("verify without sudo: %d", r.Status)
	}

	ctx := context.Background()
	js := s.Log.JetStream()
	st, err := js.Stream(ctx, ledger.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := info.State.LastSeq / 2
	if err := st.DeleteMsg(ctx, victim); err == nil {
		t.Fatal("the log stream allowed a delete while DenyDelete is set")
	}
	cfg := info.Config
	cfg.DenyDelete = false
	if _, err := js.UpdateStream(ctx, cfg); err == nil {
		t.Fatal("JetStream let DenyDelete be lifted")
	}
	// JetStream will not lift DenyDelete, so the attacker rebuilds the stream: copy every
	// message, delete the stream, create it again without the flag, put the copies back (they
	// get their old sequences), delete the victim, and set the flag again.
	rebuildStreamWithout(t, js, info, victim)
	ok, rep := verifyLog(t, s, 0)
	if ok || num(t, rep["first_bad_seq"]) != int64(victim) {
		t.Fatalf("after deleting seq %d, verify = ok %v, %v", victim, ok, rep)
	}
	probs := rep["problems"].([]any)
	first := probs[0].(map[string]any)
	if first["kind"] != "missing" || !strings.Contains(first["detail"].(string), fmt.Sprint(victim)) {
		t.Fatalf("first problem = %v", first)
	}
	// The server still works (the live views are past the hole), and the chain goes on.
	writeSome(t, s, "after", 2)
}

// TestAuditVerifyAlteredMessage: an attacker with access to the data directory edits a stored
// batch in place — one byte of an encrypted payload, with the store's own record checksum
// recomputed so JetStream serves it as valid. verify names the altered sequence.
func TestAuditVerifyAlteredMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for JetStream's block cache to expire")
	}
	s := startServer(t)
	writeSome(t, s, "v", 10)
	if ok, rep := verifyLog(t, s, 0); !ok {
		t.Fatalf("untouched log does not verify: %v", rep)
	}
	ctx := context.Background()
	info, err := mustStream(t, s).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := info.State.LastSeq - 3
	alterStoredMessage(t, filepath.Join(s.Dir, "jetstream"), ledger.StreamName, victim)
	// JetStream keeps a block's messages in memory while it is busy; once idle it reads the
	// file again, and serves the altered bytes.
	var rep map[string]any
	eventually(t, 40*time.Second, "verify sees the altered batch", func() bool {
		var ok bool
		ok, rep = verifyLog(t, s, 0)
		if ok {
			time.Sleep(2 * time.Second)
		}
		return !ok
	})
	if num(t, rep["first_bad_seq"]) != int64(victim) {
		t.Fatalf("after altering seq %d, verify = %v", victim, rep)
	}
	first := rep["problems"].([]any)[0].(map[string]any)
	if first["kind"] != "altered" {
		t.Fatalf("first problem = %v", first)
	}
	t.Logf("verify: %v", rep["problems"])
}

// rebuildStreamWithout recreates stream info.Config.Name with the same messages at the same
// sequences, except victim.
func rebuildStreamWithout(t *testing.T, js jetstream.JetStream, info *jetstream.StreamInfo, victim uint64) {
	t.Helper()
	ctx := context.Background()
	st, err := js.Stream(ctx, info.Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[uint64]*jetstream.RawStreamMsg{}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // an earlier hole: a placeholder keeps the sequences, then goes
		}
		if err != nil {
			t.Fatalf("copy seq %d: %v", seq, err)
		}
		msgs[seq] = m
	}
	if err := js.DeleteStream(ctx, info.Config.Name); err != nil {
		t.Fatal(err)
	}
	cfg := info.Config
	cfg.DenyDelete, cfg.DenyPurge = false, false
	st, err = createStream(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	drop := []uint64{victim}
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, ok := msgs[seq]
		if !ok {
			m = &jetstream.RawStreamMsg{Subject: cfg.Subjects[0], Data: []byte("placeholder")}
			if strings.HasSuffix(m.Subject, ">") {
				m.Subject = strings.TrimSuffix(m.Subject, ">") + "data"
			}
			drop = append(drop, seq)
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject, Data: m.Data})
		if err != nil || ack.Sequence != seq {
			t.Fatalf("republish seq %d: %v, %v", seq, ack, err)
		}
	}
	for _, seq := range drop {
		if err := st.DeleteMsg(ctx, seq); err != nil {
			t.Fatal(err)
		}
	}
	cfg.DenyDelete, cfg.DenyPurge = true, true
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
}

func mustStream(t *testing.T, s *testServer) jetstream.Stream {
	t.Helper()
	st, err := s.Log.JetStream().Stream(context.Background(), ledger.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// alterStoredMessage flips the last byte of seq's message data in the stream's block files and
// rewrites the record's checksum the way the file store computes it.
func alterStoredMessage(t *testing.T, storeDir, stream string, seq uint64) {
	t.Helper()
	var blocks []string
	filepath.WalkDir(storeDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".blk") && filepath.Base(filepath.Dir(filepath.Dir(p))) == stream {
			blocks = append(blocks, p)
		}
		return nil
	})
	const hdrSize, hashSize, hbit = 22, 8, 1 << 31
	for _, blk := range blocks {
		b, err := os.ReadFile(blk)
		if err != nil {
			t.Fatal(err)
		}
		var index uint32
		fmt.Sscanf(filepath.Base(blk), "%d.blk", &index)
		for off := 0; off+hdrSize <= len(b); {
			rl := binary.LittleEndian.Uint32(b[off:])
			hasHdr := rl&hbit != 0
			rl &^= hbit
			if rl == 0 || off+int(rl) > len(b) {
				break
			}
			rec := b[off : off+int(rl)]
			rseq := binary.LittleEndian.Uint64(rec[4:])
			if rseq == seq {
				slen := int(binary.LittleEndian.Uint16(rec[20:]))
				data := rec[hdrSize:]
				dlen := len(data)
				data[dlen-hashSize-1] ^= 0x01 // last byte of the message: inside the last event's ciphertext
				key := sha256.Sum256([]byte(fmt.Sprintf("%s-%d", stream, index)))
				hh, err := highwayhash.New64(key[:])
				if err != nil {
					t.Fatal(err)
				}
				hh.Write(rec[4:20])
				hh.Write(data[:slen])
				if hasHdr {
					hh.Write(data[slen+4 : dlen-hashSize])
				} else {
					hh.Write(data[slen : dlen-hashSize])
				}
				copy(data[dlen-hashSize:], hh.Sum(nil))
				if err := os.WriteFile(blk, b, 0o600); err != nil {
					t.Fatal(err)
				}
				return
			}
			off += int(rl)
		}
	}
	t.Fatalf("seq %d not found in %v", seq, blocks)
}

var _ = commands.Options{}

// TestAuditCheckpoints: the active node appends checkpoints every N events or T seconds; verify
// --from starts at a sequence only when a checkpoint vouches for the link before it.
func TestAuditCheckpoints(t *testing.T) {
	s := startServerWith(t, commands.Options{Audit: commands.AuditOptions{CheckpointEvents: 6, CheckpointInterval: 300 * time.Millisecond}})
	writeSome(t, s, "cp", 12)
	var cps []any
	eventually(t, 10*time.Second, "checkpoints appended", func() bool {
		_, data := sysLedger(t, s, s.RootToken, "GET", "checkpoints")
		cps, _ = data["checkpoints"].([]any)
		return len(cps) >= 2
	})
	// Quiet: after the interval, at most one more checkpoint (none covers only checkpoints).
	time.Sleep(time.Second)
	_, data := sysLedger(t, s, s.RootToken, "GET", "checkpoints")
	n1 := len(data["checkpoints"].([]any))
	time.Sleep(time.Second)
	_, data = sysLedger(t, s, s.RootToken, "GET", "checkpoints")
	if n2 := len(data["checkpoints"].([]any)); n2 != n1 {
		t.Fatalf("an idle log keeps getting checkpoints: %d then %d", n1, n2)
	}
	cps = data["checkpoints"].([]any)
	first := cps[0].(map[string]any)
	cseq := uint64(num(t, first["seq"]))
	if h, _ := first["hash"].(string); len(h) != 64 {
		t.Fatalf("checkpoint hash %q", h)
	}

	ok, rep := verifyLog(t, s, cseq+1)
	if !ok || rep["trusted_checkpoint"] == nil || uint64(num(t, rep["from"])) != cseq+1 {
		t.Fatalf("verify --from %d: ok %v %v", cseq+1, ok, rep)
	}
	if ok, rep := verifyLog(t, s, 0); !ok || num(t, rep["checkpoints_checked"]) < int64(len(cps)) {
		t.Fatalf("full verify: ok %v %v", ok, rep)
	}
	// A start no checkpoint vouches for is refused, with a hint.
	r := raw(t, s.URL, "GET", fmt.Sprintf("sys/ledger/audit/verify?from=%d", cseq+2), nil, tokenHeader(s.RootToken))
	if r.Status != 400 || !strings.Contains(strings.Join(r.errs(t), " "), "no checkpoint vouches") {
		t.Fatalf("verify --from an unvouched seq: %d %s", r.Status, r.Body)
	}

	// A hole before the checkpoint is outside a verification from after it, but not outside a
	// full one; a hole after it is named either way.
	ctx := context.Background()
	info, err := mustStream(t, s).Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before, afterSeq := cseq-1, info.State.LastSeq-1
	rebuildStreamWithout(t, s.Log.JetStream(), info, before)
	if ok, rep := verifyLog(t, s, cseq+1); !ok {
		t.Fatalf("verify --from %d after a hole at %d: %v", cseq+1, before, rep)
	}
	if ok, rep := verifyLog(t, s, 0); ok || uint64(num(t, rep["first_bad_seq"])) != before {
		t.Fatalf("full verify after a hole at %d: %v", before, rep)
	}
	info, _ = mustStream(t, s).Info(ctx)
	rebuildStreamWithout(t, s.Log.JetStream(), info, afterSeq)
	if ok, rep := verifyLog(t, s, cseq+1); ok || uint64(num(t, rep["first_bad_seq"])) != afterSeq {
		t.Fatalf("verify --from %d after a hole at %d: %v", cseq+1, afterSeq, rep)
	}

	// An explicit checkpoint, on request.
	st, data := sysLedger(t, s, s.RootToken, "POST", "checkpoint")
	if st != 200 || data["checkpoint"] == nil {
		t.Fatalf("POST checkpoint: %d %v", st, data)
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
