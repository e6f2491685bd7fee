package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// TestLoadBaseDiscardsContradictedCheckpoints: unseal starts from the newest automatic
// snapshot (the checkpoint) that the log agrees with. Newer ones that the log contradicts — a
// position past the stream's end, a batch hash that is not the log's at that position, sealed
// under a keyring this node does not have, or torn (a write cut short) — are passed over, the
// older good one is used, and the views then equal a rebuild from the log: no secret is
// served from a checkpoint the log contradicts.
func TestLoadBaseDiscardsContradictedCheckpoints(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	good, cut := e.snapshotOf(t, live, nil)
	if err := store.Put(ctx, replay.AutoName(cut.Seq), good, cut.Seq); err != nil {
		t.Fatal(err)
	}
	// A secret destroyed after the good checkpoint: the bad checkpoints below were cut when
	// it still existed, so loading any of them would bring it back.
	e.fillKV(t, mountUUID, 20, 5, 1)
	e.append(t, ledger.Event{Type: kvview.MetadataDeleted, Subject: ledger.SubjectFor("kv", mountUUID, kvPath(3)),
		Payload: mustJSON(t, kvview.PathPayload{Mount: mountUUID, Path: kvPath(3)})})
	stale, _ := e.snapshotOf(t, live, nil) // live has not applied the tail: the state before it
	if err := live.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	head, _ := live.Head()

	otherKR, err := ledger.NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	encode := func(t *testing.T, seq uint64, hash [32]byte, kr *ledger.Keyring) []byte {
		t.Helper()
		f, err := replay.Decode(stale)
		if err != nil {
			t.Fatal(err)
		}
		s, err := f.Open(e.kr)
		if err != nil {
			t.Fatal(err)
		}
		s.Seq, s.Hash = seq, hash
		var buf bytes.Buffer
		if _, err := s.Encode(&buf, kr); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	headHash, err := replay.BatchHash(ctx, e.log.JetStream(), head)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		seq  uint64
		data func(t *testing.T) []byte
	}{
		{"position past the stream", head + 50, func(t *testing.T) []byte { return encode(t, head+50, headHash, e.kr) }},
		{"the log's batch there is another", head, func(t *testing.T) []byte { return encode(t, head, [32]byte{1}, e.kr) }},
		{"sealed under another keyring", head, func(t *testing.T) []byte { return encode(t, head, headHash, otherKR) }},
		{"torn write", head, func(t *testing.T) []byte { b := encode(t, head, headHash, e.kr); return b[:len(b)*2/3] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := replay.AutoName(tc.seq)
			if err := store.Put(ctx, name, tc.data(t), tc.seq); err != nil {
				t.Fatal(err)
			}
			defer store.Delete(ctx, name)
			views := newViews()
			base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views, replay.BaseOptions{})
			if err != nil || base == nil || base.Seq != cut.Seq {
				t.Fatalf("LoadBase = %+v, %v; want the good checkpoint at %d", base, err, cut.Seq)
			}
			checkTail(t, e, live, views, base, head)
		})
	}
}

func kvPath(i int) string { return fmt.Sprintf("app/%06d", i) }

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
