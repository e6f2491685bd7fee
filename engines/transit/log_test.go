package transit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// logNode is the engine over a real embedded log and runner: decide, append, wait, as the
// pipeline does. It can restart, rebuilding the view from the log alone.
type logNode struct {
	t       *testing.T
	dir     string
	keyring *ledger.Keyring
	log     *ledger.Log
	runner  *projections.Runner
	view    *transitview.View
	b       *Backend
	stop    func()
	n       int
}

func newLogNode(t *testing.T) *logNode {
	k, err := ledger.NewKeyring(epoch)
	if err != nil {
		t.Fatal(err)
	}
	n := &logNode{t: t, dir: t.TempDir(), keyring: k}
	n.open()
	t.Cleanup(func() { n.stop() })
	return n
}

func (n *logNode) open() {
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: n.dir})
	if err != nil {
		n.t.Fatal(err)
	}
	l.SetKeyring(n.keyring)
	n.log, n.view = l, transitview.New()
	n.runner = projections.NewRunner(l, n.keyring, n.view)
	if err := n.runner.CatchUp(ctx); err != nil {
		n.t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = n.runner.Run(runCtx) }()
	n.b = New(n.view, engines.Mount{Path: "transit/", Type: "transit", UUID: "mount-uuid-1"})
	n.stop = func() {
		cancel()
		<-done
		_ = l.Close()
	}
}

func (n *logNode) restart() {
	n.stop()
	n.open()
}

func (n *logNode) do(path string, data map[string]any) map[string]any {
	n.t.Helper()
	ctx := context.Background()
	n.n++
	req := &engines.Request{ID: "r", Op: engines.OpUpdate, Path: path, Data: body(mustJSON(n.t, data)),
		Mount: n.b.mount, Now: epoch.Add(time.Duration(n.n) * time.Second)}
	if ok, _ := n.b.Exists(ctx, req); !ok {
		req.Op = engines.OpCreate
	}
	resp, err := n.b.HandleRequest(ctx, req)
	if err != nil {
		n.t.Fatalf("%s: %v", path, err)
	}
	if len(resp.Events) > 0 {
		pos, err := n.log.Append(ctx, resp.Events)
		if err != nil {
			n.t.Fatalf("append: %v", err)
		}
		if err := n.runner.WaitFor(ctx, pos[len(pos)-1].Seq); err != nil {
			n.t.Fatalf("wait: %v", err)
		}
	}
	return roundTrip(n.t, resp.Data)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	if v == nil {
		return "{}"
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestThroughTheLog: keys survive a restart (the view is rebuilt from sealed events alone),
// and no key material is on disk in the clear.
func TestThroughTheLog(t *testing.T) {
	n := newLogNode(t)
	n.do("keys/app", map[string]any{"exportable": true})
	ct1 := n.do("encrypt/app", map[string]any{"plaintext": b64("before restart")})["ciphertext"].(string)
	n.do("keys/app/rotate", nil)
	n.do("encrypt/auto", map[string]any{"plaintext": b64("upserted")})
	k, _ := n.view.Get(n.b.mount.UUID, "app")
	material := [][]byte{k.Versions[1].Key, k.Versions[2].Key, k.Versions[1].HMACKey}

	n.restart()
	if got := unb64(t, n.do("decrypt/app", map[string]any{"ciphertext": ct1})["plaintext"]); got != "before restart" {
		t.Fatalf("after restart: %q", got)
	}
	if v := n.do("keys/app/rotate", nil)["latest_version"]; v != json.Number("3") {
		t.Fatalf("latest after restart and rotation: %v", v)
	}
	for _, m := range material {
		if hits := filesContaining(t, n.dir, m); len(hits) > 0 {
			t.Fatalf("key material in the clear on disk: %v", hits)
		}
	}
}

func filesContaining(t *testing.T, dir string, needle []byte) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if bytes.Contains(b, needle) || bytes.Contains(b, []byte(encodeStd(needle))) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}
