package httpapi_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

// snapServer is an in-process Ledger like testServer, optionally left uninitialised, that
// keeps its unseal keys for the snapshot tests.
type snapServer struct {
	*testServer
	Keys []string // base64
}

func newSnapServer(t *testing.T, initialise bool) *snapServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := ledger.Open(ctx, ledger.Options{Dir: dir, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	core, err := commands.New(ctx, l, commands.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(httpapi.New(core, httpapi.Options{Logger: logger}))
	t.Cleanup(func() {
		hs.Close()
		core.Close()
		l.Close()
	})
	s := &snapServer{testServer: &testServer{URL: hs.URL, Dir: dir, Core: core, Log: l}}
	if !initialise {
		return s
	}
	res, err := core.Init(ctx, commands.InitRequest{SecretShares: 3, SecretThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range res.Keys {
		s.Keys = append(s.Keys, base64.StdEncoding.EncodeToString(k))
	}
	s.RootToken = res.RootToken
	s.unseal(t, s.Keys[0], s.Keys[1])
	if err := s.Client(t, s.RootToken).Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *snapServer) unseal(t *testing.T, keys ...string) {
	t.Helper()
	c := s.Client(t, "")
	for _, k := range keys {
		if _, err := c.Sys().Unseal(k); err != nil {
			t.Fatalf("unseal: %v", err)
		}
	}
	st, err := c.Sys().SealStatus()
	if err != nil || st.Sealed {
		t.Fatalf("still sealed after %d keys: %+v %v", len(keys), st, err)
	}
}

// save downloads a snapshot with the official client.
func save(t *testing.T, c *vault.Client) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := c.Sys().RaftSnapshot(&buf); err != nil {
		t.Fatalf("RaftSnapshot: %v", err)
	}
	return buf.Bytes()
}

// lastSeq is the log's last sequence: unchanged means nothing was appended.
func (s *snapServer) lastSeq(t *testing.T) uint64 {
	t.Helper()
	seq, err := s.Log.LastSeq(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return seq
}

// assertNoClear fails if any marker appears in data, or in any entry of the archive it holds.
func assertNoClear(t *testing.T, what string, data []byte, markers ...string) {
	t.Helper()
	blobs := [][]byte{data}
	if gz, err := gzip.NewReader(bytes.NewReader(data)); err == nil {
		tr := tar.NewReader(gz)
		for {
			_, err := tr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("%s: %v", what, err)
				}
				break
			}
			b, _ := io.ReadAll(tr)
			blobs = append(blobs, b)
		}
	}
	for _, b := range blobs {
		for _, m := range markers {
			if m != "" && bytes.Contains(b, []byte(m)) {
				t.Fatalf("%s holds %q in clear", what, m)
			}
		}
	}
}
