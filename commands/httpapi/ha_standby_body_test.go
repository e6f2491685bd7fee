package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands/httpapi"
)

// TestHAStandbyForwardBodyLimit: a write forwarded by a standby whose body is over
// max_request_size is refused with 413 — at once when its length is declared, as soon as the
// limit is crossed when it is chunked — and nothing is written; a body just under the limit
// is forwarded whole (read back byte for byte on the active node).
func TestHAStandbyForwardBodyLimit(t *testing.T) {
	const limit = 64 << 10
	h := startHAStandbyCluster(t, httpapi.Options{MaxRequestBytes: limit})
	sbc := h.client(t, h.sb1, h.root)
	if err := sbc.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	active := h.client(t, h.act, h.root)
	body := func(n int) []byte {
		b, _ := json.Marshal(map[string]any{"data": map[string]any{"v": strings.Repeat("x", n)}})
		return b
	}
	put := func(name string, r io.Reader, length int64) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPut, h.nodes[h.sb1].url+"/v1/secret/data/"+name, r)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("X-Vault-Token", h.root)
		resp, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("PUT %s through a standby: %v", name, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	missing := func(name string) {
		t.Helper()
		if _, err := active.KVv2("secret").Get(context.Background(), name); err == nil {
			t.Fatalf("secret/%s was written from an oversized body", name)
		}
	}

	big := body(limit + 1024)
	code, msg := put("declared", bytes.NewReader(big), int64(len(big)))
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "request body too large") || strings.Contains(msg, "xxxx") {
		t.Fatalf("declared oversized body: %d %s", code, msg)
	}
	missing("declared")

	// Chunked: the length is unknown until the limit is crossed mid-stream.
	pr, pw := io.Pipe()
	go func() {
		for off := 0; off < len(big); off += 4096 {
			if _, err := pw.Write(big[off:min(off+4096, len(big))]); err != nil {
				return
			}
		}
		pw.Close()
	}()
	code, msg = put("chunked", pr, -1)
	pr.Close()
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "request body too large") {
		t.Fatalf("chunked oversized body: %d %s", code, msg)
	}
	missing("chunked")

	// Just under the limit: forwarded whole, declared or chunked.
	ok := body(limit - 1024)
	var want map[string]map[string]string
	json.Unmarshal(ok, &want)
	if code, msg := put("whole", bytes.NewReader(ok), int64(len(ok))); code != http.StatusOK {
		t.Fatalf("body under the limit through a standby: %d %s", code, msg)
	}
	if code, msg := put("whole-chunked", io.MultiReader(bytes.NewReader(ok)), -1); code != http.StatusOK {
		t.Fatalf("chunked body under the limit through a standby: %d %s", code, msg)
	}
	for _, name := range []string{"whole", "whole-chunked"} {
		s, err := active.KVv2("secret").Get(context.Background(), name)
		if err != nil || s.Data["v"] != want["data"]["v"] {
			t.Fatalf("secret/%s on the active node: %v (value of %d bytes, want %d)", name, err, len(s.Data["v"].(string)), len(want["data"]["v"]))
		}
	}
}
