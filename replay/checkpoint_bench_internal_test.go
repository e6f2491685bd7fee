package replay

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// BenchmarkCheckpointForms decodes a 45 MiB view (a checkpoint's size at 100k secrets) from a
// snapshot file (gzip layer) and from a checkpoint (bare archive), as Store.Decode does, and
// encodes both: what dropping the gzip layer from checkpoints saves.
func BenchmarkCheckpointForms(b *testing.B) {
	kr, err := ledger.NewKeyring(time.Now())
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 45<<20)
	rand.Read(data)
	s := &Snapshot{ClusterID: "bench", Seq: 1, Created: time.Now(),
		Seal:  SealConfig{Shares: 1, Threshold: 1, Term: 1, Keyring: []byte{1}},
		Views: []Part{{Name: "kv", Data: data}}}
	for _, form := range []struct {
		name   string
		encode func(w *bytes.Buffer) error
	}{
		{"file", func(w *bytes.Buffer) error { _, err := s.Encode(w, kr); return err }},
		{"checkpoint", func(w *bytes.Buffer) error { _, err := s.EncodeCheckpoint(w, kr); return err }},
	} {
		var enc bytes.Buffer
		if err := form.encode(&enc); err != nil {
			b.Fatal(err)
		}
		b.Run("decode-"+form.name, func(b *testing.B) {
			b.SetBytes(int64(enc.Len()))
			for range b.N {
				if _, err := decodeFrom(bytes.NewReader(enc.Bytes()), int64(enc.Len()), false, true); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("encode-"+form.name, func(b *testing.B) {
			b.SetBytes(int64(enc.Len()))
			var w bytes.Buffer
			for range b.N {
				w.Reset()
				w.Grow(enc.Len())
				if err := form.encode(&w); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
