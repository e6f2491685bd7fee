package replay_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/seal"
	"github.com/ledger-secrets/ledger/replay"
)

// TestCheckpointIsTheBareArchive: a checkpoint (EncodeCheckpoint) holds the same entries as the
// snapshot file of the same cut, without the gzip layer; the server's bucket reads it back into
// views equal to the live ones. A user's file must still be gzip-compressed (Decode refuses the
// bare form), and a torn or altered checkpoint is refused with ErrInvalid, never loaded.
func TestCheckpointIsTheBareArchive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	live, store := e.liveWorkload(t)
	cp, cut := e.checkpointOf(t, live)
	file, _ := e.snapshotOf(t, live, nil)
	if bytes.HasPrefix(cp, []byte{0x1f, 0x8b}) || !bytes.HasPrefix(file, []byte{0x1f, 0x8b}) {
		t.Fatal("the checkpoint should be a bare tar archive and the file gzip-compressed")
	}
	if len(cp) >= len(file)+len(file)/100 {
		t.Fatalf("checkpoint %d bytes, file %d: the bare archive should not be larger", len(cp), len(file))
	}
	cpNames, cpFiles := tarEntries(t, cp)
	fileNames, _ := tarEntries(t, file)
	if !slices.Equal(cpNames, fileNames) {
		t.Fatalf("checkpoint entries %v, file entries %v", cpNames, fileNames)
	}
	for name, b := range cpFiles {
		if strings.HasSuffix(name, ".sealed") && bytes.Contains(b, []byte("app/0000")) {
			t.Fatalf("%s holds a path in clear", name)
		}
	}

	// A user's file: the bare form is refused, with what a snapshot should be.
	if _, err := replay.Decode(cp); !errors.Is(err, replay.ErrInvalid) || !strings.Contains(err.Error(), "gzip") {
		t.Fatalf("Decode(checkpoint) = %v; want ErrInvalid naming gzip", err)
	}

	// The server's bucket: loaded, and the views equal the live ones.
	name := replay.AutoName(cut.Seq)
	if err := store.Put(ctx, name, cp, cut.Seq); err != nil {
		t.Fatal(err)
	}
	views := newViews()
	base, err := replay.LoadBase(ctx, e.log.JetStream(), store, seal.State{ClusterID: testCluster}, e.kr, views, replay.BaseOptions{})
	if err != nil || base == nil || base.Seq != cut.Seq {
		t.Fatalf("LoadBase = %+v, %v; want the checkpoint at %d", base, err, cut.Seq)
	}
	for _, r := range replay.Compare(replay.Digests(live.Views()), replay.Digests(views)) {
		if !r.Match {
			t.Fatalf("view %s: loaded from the checkpoint != live", r.Name)
		}
	}
	if _, ok := views[2].(*kvview.View).Secret(mountUUID, "app/000001"); !ok {
		t.Fatal("a secret of the workload is missing after loading the checkpoint")
	}

	// Torn or altered: refused with ErrInvalid.
	flip := func(at int) []byte {
		b := bytes.Clone(cp)
		b[at] ^= 0x40
		return b
	}
	meta := bytes.Index(cp, []byte(`"cluster_id"`))
	section := bytes.Index(cp, []byte("views/"))
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"one block", cp[:512]},
		{"under a block", cp[:300]},
		{"cut in the middle", cp[:len(cp)/2]},
		{"last byte missing", cp[:len(cp)-1]},
		{"no end marker", cp[:len(cp)-1024]},
		{"a tar header altered", flip(100)},
		{"the header altered", flip(meta + 2)},
		{"a sealed section altered", flip(section + 2048)},
		{"a sealed section's last byte altered", flip(len(cp) - 3000)},
		{"not an archive", bytes.Repeat([]byte{'x'}, 4096)},
		{"bytes after the end marker", append(bytes.Clone(cp), make([]byte, 512)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if meta < 0 || section < 0 {
				t.Fatal("the checkpoint's layout was not found")
			}
			name := replay.AutoName(cut.Seq + 1)
			if err := store.Put(ctx, name, tc.data, cut.Seq+1); err != nil {
				t.Fatal(err)
			}
			defer store.Delete(ctx, name)
			f, err := store.Decode(ctx, name)
			if err == nil {
				_, err = f.Open(e.kr)
			}
			if err == nil {
				t.Fatal("a torn or altered checkpoint was accepted")
			}
			if !errors.Is(err, replay.ErrInvalid) && !errors.Is(err, replay.ErrNotAuthentic) {
				t.Fatalf("error %v; want ErrInvalid or ErrNotAuthentic", err)
			}
		})
	}
}
