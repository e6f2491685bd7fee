package kv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// harness plays the pipeline around one backend: a real embedded log, keyring, data keys and
// runner. do() decides, appends the events, waits until the view applied them, then calls the
// shred hook — the order the pipeline follows.
type harness struct {
	t       *testing.T
	dir     string
	log     *ledger.Log
	keyring *ledger.Keyring
	keys    *ledger.DataKeys
	view    *kvview.View
	runner  *projections.Runner
	b       *Backend
	mount   engines.Mount
	now     time.Time
	reqs    int
	closeFn func()
}

var epoch = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func newHarness(t *testing.T, version string) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), now: epoch}
	k, err := ledger.NewKeyring(epoch)
	if err != nil {
		t.Fatal(err)
	}
	h.keyring = k
	h.mount = engines.Mount{Path: "secret/", Type: "kv", UUID: "mount-uuid-1", Accessor: "kv_1",
		Options: map[string]string{"version": version}, DefaultLeaseTTL: 768 * time.Hour}
	h.open()
	t.Cleanup(func() { h.closeFn() })
	return h
}

// open starts (or restarts) everything on h.dir, rebuilding the view from the log.
func (h *harness) open() {
	t := h.t
	ctx := context.Background()
	l, err := ledger.Open(ctx, ledger.Options{Dir: h.dir})
	if err != nil {
		t.Fatal(err)
	}
	l.SetKeyring(h.keyring)
	keys, err := ledger.OpenDataKeys(ctx, l.JetStream(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Load(ctx, h.keyring); err != nil {
		t.Fatal(err)
	}
	h.log, h.keys, h.view = l, keys, kvview.New()
	h.runner = projections.NewRunner(l, h.keyring, h.view)
	if err := h.runner.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.runner.Run(runCtx) }()
	h.b = New(h.view, h.keys, h.keyring, h.mount)
	var once sync.Once
	h.closeFn = func() {
		once.Do(func() {
			stop()
			<-done
			keys.Close()
			l.Close()
		})
	}
}

// restart closes everything and opens it again on the same data dir.
func (h *harness) restart() {
	h.closeFn()
	h.open()
}

func (h *harness) req(op engines.Operation, path string, data map[string]any) *engines.Request {
	h.reqs++
	h.now = h.now.Add(time.Millisecond)
	if data == nil {
		data = map[string]any{}
	}
	return &engines.Request{ID: fmt.Sprintf("req-%d", h.reqs), Op: op, Path: path, Data: data, Mount: h.mount,
		Caller: &engines.Caller{Accessor: "accessor-1"}, Now: h.now}
}

// do runs one request through decide → append → apply → shred.
func (h *harness) do(op engines.Operation, path string, data map[string]any) (*engines.Response, error) {
	h.t.Helper()
	ctx := context.Background()
	req := h.req(op, path, data)
	resp, err := h.b.HandleRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	if resp == nil {
		h.t.Fatalf("%s %s: nil response without error", op, path)
	}
	if len(resp.Events) > 0 {
		if op == engines.OpRead || op == engines.OpList {
			h.t.Fatalf("%s %s: a read decided events", op, path)
		}
		pos, err := h.log.Append(ctx, resp.Events)
		if err != nil {
			h.t.Fatalf("append: %v", err)
		}
		if err := h.runner.WaitFor(ctx, pos[len(pos)-1].Seq); err != nil {
			h.t.Fatalf("wait: %v", err)
		}
		if err := h.b.Shred(ctx, resp.Events); err != nil {
			h.t.Fatalf("shred: %v", err)
		}
	}
	return resp, nil
}

// ok is do that must succeed.
func (h *harness) ok(op engines.Operation, path string, data map[string]any) *engines.Response {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err != nil {
		h.t.Fatalf("%s %s: %v", op, path, err)
	}
	return resp
}

// fails is do that must fail with kind and, when msg is not empty, exactly that message.
func (h *harness) fails(op engines.Operation, path string, data map[string]any, kind error, msg string) error {
	h.t.Helper()
	resp, err := h.do(op, path, data)
	if err == nil {
		h.t.Fatalf("%s %s: succeeded (%+v), want %v", op, path, resp, kind)
	}
	if !errors.Is(err, kind) {
		h.t.Fatalf("%s %s: error %v, want %v", op, path, err, kind)
	}
	if msg != "" && err.Error() != msg {
		h.t.Fatalf("%s %s: message %q, want %q", op, path, err.Error(), msg)
	}
	return err
}

// body decodes JSON the way the HTTP edge does (numbers kept as json.Number).
func body(s string) map[string]any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		panic(err)
	}
	return m
}

// wire renders a response's data as the client would see it.
func wire(t *testing.T, resp *engines.Response) string {
	t.Helper()
	b, err := json.Marshal(resp.Data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// filesContaining lists the files under dir whose bytes contain needle.
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
		if bytes.Contains(b, needle) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}
