package transit

import (
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

func (h *harness) cached() map[aeadID]aeadEntry {
	h.b.aeads.mu.RLock()
	defer h.b.aeads.mu.RUnlock()
	out := make(map[aeadID]aeadEntry, len(h.b.aeads.m))
	for id, e := range h.b.aeads.m {
		out[id] = e
	}
	return out
}

// The cache serves a version's own key, follows rotation, and never serves a key the view no
// longer holds: a trimmed version's and a deleted key's expanded keys go at the next miss, and
// a key deleted and created again under the same name gets its own.
func TestAEADCache(t *testing.T) {
	h := newHarness(t)
	h.write("keys/k", nil)
	ct1 := h.encrypt("k", "one", nil)
	first := h.cached()[aeadID{"k", 1}].aead
	if first == nil {
		t.Fatal("version 1's AEAD was not cached")
	}
	if h.decrypt("k", ct1, nil) != "one" || h.cached()[aeadID{"k", 1}].aead != first {
		t.Fatal("the cached AEAD was not reused")
	}

	// Rotation: version 2 encrypts, version 1 still decrypts, each under its own entry.
	h.write("keys/k/rotate", nil)
	ct2 := h.encrypt("k", "two", nil)
	if got := h.cached(); len(got) != 2 || got[aeadID{"k", 2}].aead == nil {
		t.Fatalf("after rotation: %v", got)
	}
	if h.decrypt("k", ct1, nil) != "one" || h.decrypt("k", ct2, nil) != "two" {
		t.Fatal("decrypt after rotation")
	}

	// Trim version 1: the next miss (a new key's first use) sweeps its entry.
	h.write("keys/k/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 2})
	h.write("keys/k/trim", map[string]any{"min_available_version": 2})
	h.write("keys/other", nil)
	h.encrypt("other", "x", nil)
	if _, ok := h.cached()[aeadID{"k", 1}]; ok {
		t.Fatal("the trimmed version's AEAD is still cached")
	}

	// Delete k and create it again: same name and version, new bytes — the old AEAD must not
	// be used (the old ciphertext does not open, the new one does).
	h.write("keys/k/config", map[string]any{"deletion_allowed": true})
	h.ok(engines.OpDelete, "keys/k", nil)
	h.write("keys/k", nil)
	ct3 := h.encrypt("k", "three", nil)
	if h.cached()[aeadID{"k", 1}].aead == first {
		t.Fatal("the deleted key's AEAD served the new key")
	}
	if h.decrypt("k", ct3, nil) != "three" {
		t.Fatal("decrypt under the re-created key")
	}
	h.bad("decrypt/k", map[string]any{"ciphertext": ct2}, "")
	if _, ok := h.cached()[aeadID{"k", 2}]; ok {
		t.Fatal("the deleted key's version 2 is still cached")
	}

	// The same again with nothing in between that misses: the entry for r/1 is there when the
	// re-created key's version 1 is asked for, and must not serve it. A backend without a
	// cache checks what the new ciphertext was sealed under.
	h.write("keys/r", nil)
	h.write("keys/r/config", map[string]any{"deletion_allowed": true})
	h.encrypt("r", "old", nil)
	old := h.cached()[aeadID{"r", 1}].aead
	h.ok(engines.OpDelete, "keys/r", nil)
	h.write("keys/r", nil)
	ct4 := h.encrypt("r", "new", nil)
	if h.cached()[aeadID{"r", 1}].aead == old {
		t.Fatal("the deleted key's AEAD served the re-created key")
	}
	fresh := &harness{t: t, view: h.view, now: h.now, mount: h.mount, b: New(h.view, h.mount)}
	if fresh.decrypt("r", ct4, nil) != "new" {
		t.Fatal("the re-created key's ciphertext does not open under its key")
	}

	// Derived keys are per request: never cached.
	h.write("keys/d", map[string]any{"derived": true})
	h.encrypt("d", "four", map[string]any{"context": b64("ctx")})
	for id := range h.cached() {
		if id.name == "d" {
			t.Fatalf("a derived key was cached: %v", id)
		}
	}

	// Seal: everything goes.
	h.b.Close()
	if got := h.cached(); len(got) != 0 {
		t.Fatalf("after Close: %d entries", len(got))
	}
	if h.decrypt("k", ct3, nil) != "three" {
		t.Fatal("decrypt after Close")
	}
}
