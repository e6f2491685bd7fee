package replay

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"

	"github.com/ledger-secrets/ledger/ledger"
)

// TestStoreParts: a snapshot larger than a part is stored as several objects, read back whole,
// replaced without mixing old and new parts, listed once and deleted with its parts.
func TestStoreParts(t *testing.T) {
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s, err := OpenStore(ctx, l.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	s.partSize = 1000
	one, two := make([]byte, 3500), make([]byte, 1200)
	rand.Read(one)
	rand.Read(two)
	if err := s.Put(ctx, AutoName(7), one, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, AutoName(7)); err != nil || !bytes.Equal(got, one) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if err := s.Put(ctx, AutoName(7), two, 7); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, AutoName(7)); err != nil || !bytes.Equal(got, two) {
		t.Fatalf("get after replace: %d bytes, %v", len(got), err)
	}
	objs, _ := s.obs.List(ctx)
	if len(objs) != 2 {
		t.Fatalf("objects after replace: %d, want 2 (the old parts are gone)", len(objs))
	}
	auto, err := s.Auto(ctx)
	if err != nil || len(auto) != 1 || auto[0].Seq != 7 {
		t.Fatalf("auto = %+v, %v", auto, err)
	}
	if err := s.Delete(ctx, AutoName(7)); err != nil {
		t.Fatal(err)
	}
	if objs, _ := s.obs.List(ctx); len(objs) != 0 {
		t.Fatalf("%d objects left after delete", len(objs))
	}
}
