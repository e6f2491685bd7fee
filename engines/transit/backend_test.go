package transit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/projections"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
	"github.com/ledger-secrets/ledger/projections/viewtest"
)

// The lesson's example, verbatim in shape:
//
//	vault write -f transit/keys/myapp-key
//	vault write transit/encrypt/myapp-key plaintext=$(echo "credit-card-1234" | base64)
//	vault write transit/decrypt/myapp-key ciphertext="vault:v1:..."
func TestLessonExample(t *testing.T) {
	h := newHarness(t)
	created := h.write("keys/myapp-key", nil) // -f: no body
	if created["type"] != "aes256-gcm96" || created["latest_version"] != json.Number("1") {
		t.Fatalf("created key: %v", created)
	}
	plaintext := "Y3JlZGl0LWNhcmQtMTIzNAo=" // echo "credit-card-1234" | base64 (with the newline)
	if plaintext != b64("credit-card-1234\n") {
		t.Fatal("test constant is wrong")
	}
	enc := h.write("encrypt/myapp-key", map[string]any{"plaintext": plaintext})
	ct, _ := enc["ciphertext"].(string)
	if !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("ciphertext %q does not start with vault:v1:", ct)
	}
	if enc["key_version"] != json.Number("1") {
		t.Fatalf("key_version = %v", enc["key_version"])
	}
	dec := h.write("decrypt/myapp-key", map[string]any{"ciphertext": ct})
	if dec["plaintext"] != plaintext {
		t.Fatalf("plaintext = %v, want %s", dec["plaintext"], plaintext)
	}
}

func TestRotateRewrapAndMinDecryptionVersion(t *testing.T) {
	h := newHarness(t)
	h.write("keys/app", nil)
	v1 := h.encrypt("app", "old secret", nil)

	rot := h.write("keys/app/rotate", nil)
	if rot["latest_version"] != json.Number("2") {
		t.Fatalf("after rotate: %v", rot)
	}
	v2 := h.encrypt("app", "new secret", nil)
	if !strings.HasPrefix(v2, "vault:v2:") {
		t.Fatalf("new ciphertext %q is not v2", v2)
	}
	if got := h.decrypt("app", v1, nil); got != "old secret" {
		t.Fatalf("v1 decrypts to %q", got)
	}

	rw := h.write("rewrap/app", map[string]any{"ciphertext": v1})
	up, _ := rw["ciphertext"].(string)
	if !strings.HasPrefix(up, "vault:v2:") || rw["key_version"] != json.Number("2") {
		t.Fatalf("rewrap: %v", rw)
	}
	if got := h.decrypt("app", up, nil); got != "old secret" {
		t.Fatalf("rewrapped decrypts to %q", got)
	}
	// key_version pins the encrypting version.
	if ct := h.encrypt("app", "pinned", map[string]any{"key_version": 1}); !strings.HasPrefix(ct, "vault:v1:") {
		t.Fatalf("key_version=1 gave %q", ct)
	}

	h.write("keys/app/config", map[string]any{"min_decryption_version": 2})
	h.bad("decrypt/app", map[string]any{"ciphertext": v1}, "ciphertext or signature version is disallowed by policy (too old)")
	if got := h.decrypt("app", v2, nil); got != "new secret" {
		t.Fatalf("v2 after min_decryption_version=2: %q", got)
	}
	h.bad("rewrap/app", map[string]any{"ciphertext": v1}, "ciphertext or signature version is disallowed by policy (too old)")
	// Lowering the floor again makes v1 readable: the floor is policy, not erasure (trim is).
	h.write("keys/app/config", map[string]any{"min_decryption_version": 1})
	if got := h.decrypt("app", v1, nil); got != "old secret" {
		t.Fatalf("v1 after lowering the floor: %q", got)
	}
	h.bad("keys/app/config", map[string]any{"min_decryption_version": 3}, "cannot set min decryption version of 3, latest key version is 2")
	h.bad("keys/app/config", map[string]any{"min_encryption_version": 2, "min_decryption_version": 3}, "cannot set min decryption version of 3, latest key version is 2")

	h.write("keys/app/config", map[string]any{"min_encryption_version": 2})
	h.bad("encrypt/app", map[string]any{"plaintext": b64("x"), "key_version": 1}, "requested version for encryption is less than the minimum encryption key version")
	h.bad("encrypt/app", map[string]any{"plaintext": b64("x"), "key_version": 3}, "requested version for encryption is higher than the latest key version")
}

// roundTrip runs every key type through its operations.
func TestEveryKeyTypeRoundTrip(t *testing.T) {
	types := []string{typeAES128, typeAES256, typeChaCha20, typeEd25519, typeECDSA256, typeECDSA384,
		typeECDSA521, typeRSA2048, typeRSA3072, typeRSA4096, typeHMAC}
	if testing.Short() {
		types = []string{typeAES128, typeAES256, typeChaCha20, typeEd25519, typeECDSA256, typeRSA2048, typeHMAC}
	}
	h := newHarness(t)
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			h.t = t
			name := "k-" + typ
			h.write("keys/"+name, map[string]any{"type": typ})
			caps := keyTypes[typ]
			read := h.read("keys/" + name)
			for field, want := range map[string]bool{
				"supports_encryption": caps.encrypt, "supports_decryption": caps.encrypt,
				"supports_signing": caps.sign, "supports_derivation": caps.derive,
			} {
				if read[field] != want {
					t.Errorf("%s = %v, want %v", field, read[field], want)
				}
			}
			if caps.encrypt {
				ct := h.encrypt(name, "round trip "+typ, nil)
				if got := h.decrypt(name, ct, nil); got != "round trip "+typ {
					t.Fatalf("decrypt = %q", got)
				}
			} else {
				h.bad("encrypt/"+name, map[string]any{"plaintext": b64("x")}, "message encryption not supported for key type "+typ)
			}
			if caps.sign {
				sig := h.write("sign/"+name, map[string]any{"input": b64("signed " + typ)})
				s, _ := sig["signature"].(string)
				if !strings.HasPrefix(s, "vault:v1:") || sig["key_version"] != json.Number("1") {
					t.Fatalf("sign: %v", sig)
				}
				if v := h.write("verify/"+name, map[string]any{"input": b64("signed " + typ), "signature": s}); v["valid"] != true {
					t.Fatalf("verify of a good signature: %v", v)
				}
				if v := h.write("verify/"+name, map[string]any{"input": b64("forged " + typ), "signature": s}); v["valid"] != false {
					t.Fatalf("verify of another input: %v", v)
				}
			} else {
				h.bad("sign/"+name, map[string]any{"input": b64("x")}, "key type "+typ+" does not support signing")
			}
			// Every key type can HMAC.
			mac := h.write("hmac/"+name, map[string]any{"input": b64("mac " + typ)})["hmac"].(string)
			if !strings.HasPrefix(mac, "vault:v1:") {
				t.Fatalf("hmac = %q", mac)
			}
			if v := h.write("verify/"+name, map[string]any{"input": b64("mac " + typ), "hmac": mac}); v["valid"] != true {
				t.Fatalf("hmac verify: %v", v)
			}
			if v := h.write("verify/"+name, map[string]any{"input": b64("other"), "hmac": mac}); v["valid"] != false {
				t.Fatalf("hmac verify of another input: %v", v)
			}
			// And it still works after a rotation, with both versions.
			h.write("keys/"+name+"/rotate", nil)
			if caps.sign {
				s := h.write("sign/"+name, map[string]any{"input": b64("v2")})["signature"].(string)
				if !strings.HasPrefix(s, "vault:v2:") {
					t.Fatalf("signature after rotation: %q", s)
				}
			}
		})
	}
	h.t = t
}

func TestReadKeyShape(t *testing.T) {
	h := newHarness(t)
	h.write("keys/shape", map[string]any{"exportable": true, "auto_rotate_period": "24h"})
	got := h.read("keys/shape")
	created := json.Number(jsonInt(epoch.Add(time.Millisecond).Unix()))
	want := map[string]any{
		"name": "shape", "type": "aes256-gcm96", "derived": false, "deletion_allowed": false,
		"min_available_version": json.Number("0"), "min_decryption_version": json.Number("1"),
		"min_encryption_version": json.Number("0"), "latest_version": json.Number("1"),
		"exportable": true, "allow_plaintext_backup": false, "supports_encryption": true,
		"supports_decryption": true, "supports_signing": false, "supports_derivation": true,
		"auto_rotate_period": json.Number("86400"), "imported_key": false,
		"keys": map[string]any{"1": created},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read:\n got %v\nwant %v", got, want)
	}
	// Asymmetric keys list public keys per version.
	h.write("keys/ec", map[string]any{"type": "ecdsa-p256"})
	v1 := h.read("keys/ec")["keys"].(map[string]any)["1"].(map[string]any)
	if v1["name"] != "P-256" || !strings.HasPrefix(v1["public_key"].(string), "-----BEGIN PUBLIC KEY-----") {
		t.Fatalf("ecdsa version: %v", v1)
	}
	if _, err := time.Parse(time.RFC3339Nano, v1["creation_time"].(string)); err != nil {
		t.Fatalf("creation_time: %v", err)
	}
	// LIST
	list := roundTrip(t, h.ok(engines.OpList, "keys/", nil).Data)
	if !reflect.DeepEqual(list["keys"], []any{"ec", "shape"}) {
		t.Fatalf("list = %v", list)
	}
	h.fails(engines.OpRead, "keys/missing", nil, engines.ErrNotFound, "")
	// Creating an existing key changes nothing and warns, as in Vault.
	resp := h.ok(engines.OpUpdate, "keys/shape", map[string]any{"type": "ed25519"})
	if len(resp.Events) != 0 || len(resp.Warnings) != 1 || resp.Warnings[0] != "key shape already existed" {
		t.Fatalf("re-create: events %d warnings %v", len(resp.Events), resp.Warnings)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestCreateValidation(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		data map[string]any
		msg  string
	}{
		{map[string]any{"type": "des"}, "unknown key type des"},
		{map[string]any{"convergent_encryption": true}, "convergent encryption requires derivation to be enabled"},
		{map[string]any{"type": "ecdsa-p256", "derived": true}, "key derivation and convergent encryption not supported for keys of type ecdsa-p256"},
		{map[string]any{"type": "ed25519", "derived": true, "convergent_encryption": true}, "convergent encryption not supported for keys of type ed25519"},
		{map[string]any{"auto_rotate_period": "10m"}, "auto rotate period must be 0 to disable or at least an hour"},
		{map[string]any{"key_size": 64}, "key_size is not valid for algorithm aes256-gcm96"},
		{map[string]any{"type": "hmac", "key_size": 16}, "invalid key_size 16"},
	} {
		h.bad("keys/v", c.data, c.msg)
	}
	h.write("keys/h", map[string]any{"type": "hmac", "key_size": 64})
	if got := h.read("keys/h")["key_size"]; got != json.Number("64") {
		t.Fatalf("key_size = %v", got)
	}
}

func TestKeyNames(t *testing.T) {
	h := newHarness(t)
	for _, p := range []string{"keys/a/b", "encrypt/a/b", "decrypt/a/b/c", "keys/-a", "keys/a b", "export/encryption-key/a/1/2", "sign/a/sha2-256/x"} {
		h.bad(p, map[string]any{"plaintext": b64("x")}, "invalid key name")
	}
	h.write("keys/a.b@c-d_e", nil)
	h.fails(engines.OpUpdate, "nosuch/a", nil, engines.ErrNotFound, "unsupported path")
	h.fails(engines.OpRead, "encrypt/a.b@c-d_e", nil, engines.ErrUnsupported, "")
}

func TestBatchMixed(t *testing.T) {
	h := newHarness(t)
	h.write("keys/batch", nil)
	resp := h.ok(engines.OpUpdate, "encrypt/batch", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": b64("one"), "reference": "r1"},
		map[string]any{"plaintext": "not base64!", "reference": "r2"},
		map[string]any{"plaintext": b64("three"), "reference": "r3"},
	}})
	status, res := batchResults(t, resp)
	if status != 400 {
		t.Fatalf("status %d, want 400 (Vault answers a batch with a failed item with 400)", status)
	}
	if res[1]["error"] == nil || res[1]["ciphertext"] != nil || res[1]["reference"] != "r2" {
		t.Fatalf("bad item: %v", res[1])
	}
	if strings.Contains(res[1]["error"].(string), "not base64") {
		t.Fatal("the error echoes the plaintext")
	}
	for _, i := range []int{0, 2} {
		if res[i]["error"] != nil || res[i]["key_version"] != json.Number("1") {
			t.Fatalf("good item %d: %v", i, res[i])
		}
	}

	// partial_failure_response_code overrides the status when some items succeeded.
	resp = h.ok(engines.OpUpdate, "encrypt/batch", map[string]any{"partial_failure_response_code": 207, "batch_input": []any{
		map[string]any{"plaintext": b64("one")}, map[string]any{"plaintext": "%%%"},
	}})
	if status, _ := batchResults(t, resp); status != 207 {
		t.Fatalf("partial failure status %d, want 207", status)
	}
	// ... but not when everything failed.
	resp = h.ok(engines.OpUpdate, "encrypt/batch", map[string]any{"partial_failure_response_code": 207, "batch_input": []any{
		map[string]any{"plaintext": "%%%"},
	}})
	if status, _ := batchResults(t, resp); status != 400 {
		t.Fatalf("all-failed status %d, want 400", status)
	}

	// Decrypt batch: one good, one tampered, one from another key.
	good := res[0]["ciphertext"].(string)
	h.write("keys/other", nil)
	foreign := h.encrypt("other", "foreign", nil)
	resp = h.ok(engines.OpUpdate, "decrypt/batch", map[string]any{"batch_input": []any{
		map[string]any{"ciphertext": good},
		map[string]any{"ciphertext": tamper(good)},
		map[string]any{"ciphertext": foreign},
		map[string]any{"ciphertext": "vault:v9:AAAA"},
	}})
	status, res = batchResults(t, resp)
	if status != 400 || unb64(t, res[0]["plaintext"]) != "one" {
		t.Fatalf("decrypt batch: %d %v", status, res)
	}
	for i, want := range []string{"", "cipher: message authentication failed", "cipher: message authentication failed", "invalid ciphertext: version is too new"} {
		if i > 0 && res[i]["error"] != want {
			t.Errorf("item %d error %v, want %q", i, res[i]["error"], want)
		}
	}
	// All good: 200.
	resp = h.ok(engines.OpUpdate, "decrypt/batch", map[string]any{"batch_input": []any{map[string]any{"ciphertext": good}}})
	if status, _ := batchResults(t, resp); status != 200 {
		t.Fatalf("all-good status %d", status)
	}
	// Rewrap batch: per-item errors with HTTP 200, as Vault's rewrap.
	h.write("keys/batch/rotate", nil)
	resp = h.ok(engines.OpUpdate, "rewrap/batch", map[string]any{"batch_input": []any{
		map[string]any{"ciphertext": good}, map[string]any{"ciphertext": tamper(good)},
	}})
	if status, res := batchResults(t, resp); status != 200 || !strings.HasPrefix(res[0]["ciphertext"].(string), "vault:v2:") ||
		res[1]["error"] != "cipher: message authentication failed" {
		t.Fatalf("rewrap batch %d: %v", status, res)
	}
	// Whole-request errors.
	h.bad("encrypt/batch", map[string]any{"batch_input": []any{}}, "missing batch input to process")
	h.bad("encrypt/batch", map[string]any{"batch_input": []any{map[string]any{"context": b64("c")}}}, "'[0].plaintext' missing plaintext to encrypt")
	h.bad("encrypt/batch", map[string]any{"batch_input": []any{
		map[string]any{"plaintext": b64("a"), "context": b64("c")}, map[string]any{"plaintext": b64("b")},
	}}, "context should be set either in all the request blocks or in none")
	h.bad("encrypt/batch", map[string]any{"batch_input": "nope"}, "")
}

// tamper flips one bit of a ciphertext's payload.
func tamper(ct string) string {
	i := strings.LastIndexByte(ct, ':')
	raw, _ := decodeStd(ct[i+1:])
	raw[len(raw)/2] ^= 0x01
	return ct[:i+1] + encodeStd(raw)
}

func TestDerivedKeys(t *testing.T) {
	h := newHarness(t)
	h.write("keys/tenant", map[string]any{"derived": true})
	ctxA, ctxB := b64("tenant-a"), b64("tenant-b")
	ct := h.encrypt("tenant", "per tenant", map[string]any{"context": ctxA})
	if got := h.decrypt("tenant", ct, map[string]any{"context": ctxA}); got != "per tenant" {
		t.Fatalf("decrypt = %q", got)
	}
	missing := "missing 'context' for key derivation; the key was created using a derived key, which means additional, per-request information must be included in order to perform operations with the key"
	h.bad("encrypt/tenant", map[string]any{"plaintext": b64("x")}, missing)
	h.bad("decrypt/tenant", map[string]any{"ciphertext": ct}, missing)
	h.bad("decrypt/tenant", map[string]any{"ciphertext": ct, "context": ctxB}, "cipher: message authentication failed")
	h.bad("decrypt/tenant", map[string]any{"ciphertext": ct, "context": "!!"}, "")
	// Different contexts give different keys: the same plaintext encrypts differently and the
	// derived keys are not the version key.
	if read := h.read("keys/tenant"); read["kdf"] != "hkdf_sha256" || read["convergent_encryption"] != false {
		t.Fatalf("read derived key: %v", read)
	}
	// Upsert with a context creates a derived key.
	h.write("encrypt/upserted", map[string]any{"plaintext": b64("x"), "context": ctxA})
	if read := h.read("keys/upserted"); read["derived"] != true {
		t.Fatalf("upserted with context: %v", read)
	}
	// Derived ed25519: signatures per context, with the public key in the response.
	h.write("keys/ed", map[string]any{"type": "ed25519", "derived": true})
	s := h.write("sign/ed", map[string]any{"input": b64("m"), "context": ctxA})
	if s["public_key"] == nil {
		t.Fatalf("derived ed25519 sign without public_key: %v", s)
	}
	if v := h.write("verify/ed", map[string]any{"input": b64("m"), "signature": s["signature"], "context": ctxA}); v["valid"] != true {
		t.Fatalf("verify with the same context: %v", v)
	}
	if v := h.write("verify/ed", map[string]any{"input": b64("m"), "signature": s["signature"], "context": ctxB}); v["valid"] != false {
		t.Fatalf("verify with another context: %v", v)
	}
	pub := h.ok(engines.OpRead, "keys/ed", map[string]any{"context": ctxA}).Data["keys"].(map[string]any)["1"].(map[string]any)["public_key"]
	if pub != s["public_key"] {
		t.Fatalf("read with context gives %v, sign gave %v", pub, s["public_key"])
	}
}

func TestConvergentEncryption(t *testing.T) {
	for _, typ := range []string{typeAES128, typeAES256, typeChaCha20} {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t)
			h.write("keys/conv", map[string]any{"type": typ, "derived": true, "convergent_encryption": true})
			c1, c2 := b64("ctx-1"), b64("ctx-2")
			a := h.encrypt("conv", "same", map[string]any{"context": c1})
			if b := h.encrypt("conv", "same", map[string]any{"context": c1}); a != b {
				t.Fatalf("convergent encryption is not deterministic:\n%s\n%s", a, b)
			}
			if b := h.encrypt("conv", "same", map[string]any{"context": c2}); a == b {
				t.Fatal("another context gave the same ciphertext")
			}
			if b := h.encrypt("conv", "different", map[string]any{"context": c1}); a == b {
				t.Fatal("another plaintext gave the same ciphertext")
			}
			if got := h.decrypt("conv", a, map[string]any{"context": c1}); got != "same" {
				t.Fatalf("decrypt = %q", got)
			}
			h.bad("decrypt/conv", map[string]any{"ciphertext": a, "context": c2}, "cipher: message authentication failed")
			// A rotated key converges per version.
			h.write("keys/conv/rotate", nil)
			if b := h.encrypt("conv", "same", map[string]any{"context": c1}); a == b || !strings.HasPrefix(b, "vault:v2:") {
				t.Fatalf("after rotation: %s", b)
			}
			if read := h.read("keys/conv"); read["convergent_encryption"] != true || read["convergent_encryption_version"] == nil {
				t.Fatalf("read: %v", read)
			}
		})
	}
	h := newHarness(t)
	h.bad("encrypt/up", map[string]any{"plaintext": b64("x"), "convergent_encryption": true}, "convergent encryption requires derivation to be enabled, so context is required")
}

func TestUpsert(t *testing.T) {
	h := newHarness(t)
	h.noCreate = true // a caller without "create"
	h.bad("encrypt/lazy", map[string]any{"plaintext": b64("x")}, "encryption key not found")
	if _, ok := h.view.Get(h.mount.UUID, "lazy"); ok {
		t.Fatal("encrypt without create made a key")
	}
	h.noCreate = false
	resp := h.ok(engines.OpUpdate, "encrypt/lazy", map[string]any{"plaintext": b64("x"), "type": "chacha20-poly1305"})
	if len(resp.Events) != 1 || resp.Events[0].Type != transitview.KeyCreated {
		t.Fatalf("upsert events: %v", resp.Events)
	}
	if read := h.read("keys/lazy"); read["type"] != "chacha20-poly1305" {
		t.Fatalf("upserted key: %v", read)
	}
	ct := resp.Data["ciphertext"].(string)
	if got := h.decrypt("lazy", ct, nil); got != "x" {
		t.Fatalf("decrypt = %q", got)
	}
	h.bad("encrypt/asym", map[string]any{"plaintext": b64("x"), "type": "ecdsa-p256"}, "key type ecdsa-p256 not supported for this operation")
	h.bad("encrypt/asym", map[string]any{"plaintext": b64("x"), "type": "nope"}, "unknown key type nope")
	// A create whose key appeared meanwhile warns, as Vault does.
	req := h.req(engines.OpCreate, "encrypt/lazy", map[string]any{"plaintext": b64("y")})
	r, err := h.b.HandleRequest(t.Context(), req)
	if err != nil || len(r.Events) != 0 || len(r.Warnings) != 1 {
		t.Fatalf("late create: %v %v", r, err)
	}
	// Decrypt, sign, datakey, hmac never upsert.
	h.bad("decrypt/none", map[string]any{"ciphertext": ct}, "encryption key not found")
	h.bad("rewrap/none", map[string]any{"ciphertext": ct}, "encryption key not found")
	h.bad("datakey/plaintext/none", nil, "encryption key not found")
	h.bad("hmac/none", map[string]any{"input": b64("x")}, "encryption key not found")
	h.bad("sign/none", map[string]any{"input": b64("x")}, "signing key not found")
	h.bad("verify/none", map[string]any{"input": b64("x"), "signature": "vault:v1:AA=="}, "signature verification key not found")
}

func TestDatakey(t *testing.T) {
	h := newHarness(t)
	h.write("keys/dk", nil)
	for _, bits := range []int{128, 256, 512} {
		d := h.write("datakey/plaintext/dk", map[string]any{"bits": bits})
		key := unb64(t, d["plaintext"])
		if len(key) != bits/8 {
			t.Fatalf("bits %d: key of %d bytes", bits, len(key))
		}
		if got := h.decrypt("dk", d["ciphertext"].(string), nil); got != key {
			t.Fatal("the wrapped data key does not decrypt to the plaintext key")
		}
	}
	w := h.write("datakey/wrapped/dk", nil)
	if _, ok := w["plaintext"]; ok || w["ciphertext"] == nil || w["key_version"] != json.Number("1") {
		t.Fatalf("wrapped: %v", w)
	}
	if n := len(h.decrypt("dk", w["ciphertext"].(string), nil)); n != 32 {
		t.Fatalf("default data key has %d bytes", n)
	}
	h.bad("datakey/plaintext/dk", map[string]any{"bits": 64}, "invalid bit length")
	h.bad("datakey/both/dk", nil, "Invalid path, must be 'plaintext' or 'wrapped'")
	h.write("keys/dkd", map[string]any{"derived": true})
	h.bad("datakey/plaintext/dkd", nil, "")
	d := h.write("datakey/plaintext/dkd", map[string]any{"context": b64("c")})
	if got := h.decrypt("dkd", d["ciphertext"].(string), map[string]any{"context": b64("c")}); got != unb64(t, d["plaintext"]) {
		t.Fatal("derived data key does not round trip")
	}
}

func TestExport(t *testing.T) {
	h := newHarness(t)
	h.write("keys/secret", nil)
	h.fails(engines.OpRead, "export/encryption-key/secret", nil, engines.ErrBadRequest, "private key material is not exportable")
	h.fails(engines.OpRead, "export/hmac-key/secret", nil, engines.ErrBadRequest, "private key material is not exportable")
	h.write("keys/secret/config", map[string]any{"exportable": true})
	h.write("keys/secret/rotate", nil)
	all := h.read("export/encryption-key/secret")
	keys := all["keys"].(map[string]any)
	if len(keys) != 2 || all["name"] != "secret" || all["type"] != "aes256-gcm96" {
		t.Fatalf("export: %v", all)
	}
	k, _ := h.view.Get(h.mount.UUID, "secret")
	if keys["2"] != encodeStd(k.Versions[2].Key) {
		t.Fatal("exported key is not the key")
	}
	for _, v := range []string{"2", "v2", "latest"} {
		one := h.read("export/encryption-key/secret/" + v)["keys"].(map[string]any)
		if len(one) != 1 || one["2"] != keys["2"] {
			t.Fatalf("export version %s: %v", v, one)
		}
	}
	h.fails(engines.OpRead, "export/encryption-key/secret/7", nil, engines.ErrBadRequest, "version does not exist or cannot be found")
	h.fails(engines.OpRead, "export/encryption-key/secret/x", nil, engines.ErrBadRequest, "invalid key version")
	h.fails(engines.OpRead, "export/signing-key/secret", nil, engines.ErrBadRequest, "signing not supported for the key")
	h.fails(engines.OpRead, "export/bogus/secret", nil, engines.ErrBadRequest, "invalid export type: bogus")
	h.fails(engines.OpRead, "export/encryption-key/missing", nil, engines.ErrNotFound, "")
	hk := h.read("export/hmac-key/secret/1")["keys"].(map[string]any)["1"]
	if hk != encodeStd(k.Versions[1].HMACKey) {
		t.Fatal("exported hmac key is not the hmac key")
	}
	// Public keys need no exportable flag.
	h.write("keys/signer", map[string]any{"type": "ed25519"})
	pub := h.read("export/public-key/signer")["keys"].(map[string]any)["1"]
	if pub == nil || pub == "" {
		t.Fatal("no public key")
	}
	h.fails(engines.OpRead, "export/signing-key/signer", nil, engines.ErrBadRequest, "private key material is not exportable")
	h.write("keys/ecx", map[string]any{"type": "ecdsa-p384", "exportable": true})
	if pk := h.read("export/signing-key/ecx")["keys"].(map[string]any)["1"].(string); !strings.HasPrefix(pk, "-----BEGIN EC PRIVATE KEY-----") {
		t.Fatalf("ecdsa signing key: %.30s", pk)
	}
}

func TestBackupRestore(t *testing.T) {
	h := newHarness(t)
	h.write("keys/precious", map[string]any{"exportable": true})
	h.fails(engines.OpRead, "backup/precious", nil, engines.ErrBadRequest, "plaintext backup is disallowed on the policy")
	h.write("keys/precious/config", map[string]any{"allow_plaintext_backup": true, "deletion_allowed": true})
	ct1 := h.encrypt("precious", "before backup", nil)
	h.write("keys/precious/rotate", nil)
	ct2 := h.encrypt("precious", "also before", nil)
	blob := h.read("backup/precious")["backup"].(string)

	h.bad("restore", map[string]any{"backup": blob}, `key "precious" already exists`)
	h.ok(engines.OpDelete, "keys/precious", nil)
	h.bad("decrypt/precious", map[string]any{"ciphertext": ct1}, "encryption key not found")
	h.write("restore", map[string]any{"backup": blob})
	if got := h.decrypt("precious", ct1, nil); got != "before backup" {
		t.Fatalf("after restore: %q", got)
	}
	if got := h.decrypt("precious", ct2, nil); got != "also before" {
		t.Fatalf("after restore v2: %q", got)
	}
	read := h.read("keys/precious")
	if read["latest_version"] != json.Number("2") || read["restore_info"] == nil {
		t.Fatalf("restored key: %v", read)
	}
	// Under another name, and over an existing key with force.
	h.write("restore/copy", map[string]any{"backup": blob})
	if got := h.decrypt("copy", ct1, nil); got != "before backup" {
		t.Fatalf("restored copy: %q", got)
	}
	h.bad("restore/copy", map[string]any{"backup": blob}, `key "copy" already exists`)
	h.write("restore/copy", map[string]any{"backup": blob, "force": true})

	// Garbage and tampered backups are refused, never a panic.
	h.bad("restore/x", map[string]any{}, "'backup' must be supplied")
	h.bad("restore/x", map[string]any{"backup": "!!!"}, "failed to decode backup: not base64")
	h.bad("restore/x", map[string]any{"backup": b64("{}")}, "failed to decode backup: not a transit key backup")
	raw, _ := decodeStd(blob)
	var bb map[string]any
	if err := json.Unmarshal(raw, &bb); err != nil {
		t.Fatal(err)
	}
	bb["key"].(map[string]any)["type"] = "rsa-2048" // AES material under an RSA type
	forged, _ := json.Marshal(bb)
	h.bad("restore/x", map[string]any{"backup": encodeStd(forged)}, "")
	bb["key"].(map[string]any)["type"] = "aes128-gcm96" // 32-byte material under a 16-byte type
	forged, _ = json.Marshal(bb)
	h.bad("restore/x", map[string]any{"backup": encodeStd(forged)}, "")
	h.bad("restore/bad name", map[string]any{"backup": blob}, "invalid key name")
	// LockKey finds the name inside the backup.
	if got := h.b.LockKey(h.req(engines.OpUpdate, "restore", map[string]any{"backup": blob})); got != "precious" {
		t.Fatalf("LockKey(restore) = %q", got)
	}
}

func TestTrim(t *testing.T) {
	h := newHarness(t)
	h.write("keys/old", nil)
	ct1 := h.encrypt("old", "v1 data", nil)
	h.write("keys/old/rotate", nil)
	h.write("keys/old/rotate", nil)
	h.bad("keys/old/trim", map[string]any{"min_available_version": 2}, "minimum available version cannot be set when minimum encryption version is not set")
	h.write("keys/old/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 3})
	h.bad("keys/old/trim", nil, "missing min_available_version")
	h.bad("keys/old/trim", map[string]any{"min_available_version": 3}, "minimum available version cannot be greater than minimum decryption version")
	h.bad("keys/old/trim", map[string]any{"min_available_version": 0}, "minimum available version should be positive")
	got := h.write("keys/old/trim", map[string]any{"min_available_version": 2})
	if got["min_available_version"] != json.Number("2") || len(got["keys"].(map[string]any)) != 2 {
		t.Fatalf("after trim: %v", got)
	}
	k, _ := h.view.Get(h.mount.UUID, "old")
	if _, ok := k.Versions[1]; ok {
		t.Fatal("version 1 still in the view")
	}
	snap, _ := h.view.Snapshot()
	if strings.Contains(string(snap), `"1":{`) {
		t.Fatal("version 1 still in the snapshot")
	}
	// Now lowering min_decryption_version cannot bring v1 back.
	h.bad("keys/old/config", map[string]any{"min_decryption_version": 1}, "min decryption version should not be less then min available version")
	h.bad("decrypt/old", map[string]any{"ciphertext": ct1}, "ciphertext or signature version is disallowed by policy (too old)")
	h.bad("keys/old/trim", map[string]any{"min_available_version": 1}, "minimum available version cannot be decremented")
	h.bad("keys/missing/trim", map[string]any{"min_available_version": 1}, "invalid key name")
}

func TestDelete(t *testing.T) {
	h := newHarness(t)
	h.write("keys/keep", nil)
	h.fails(engines.OpDelete, "keys/keep", nil, engines.ErrBadRequest, "error deleting policy keep: deletion is not allowed for this policy")
	h.fails(engines.OpDelete, "keys/none", nil, engines.ErrBadRequest, "error deleting policy none: could not delete policy; not found")
	h.write("keys/keep/config", map[string]any{"deletion_allowed": true})
	resp := h.ok(engines.OpDelete, "keys/keep", nil)
	if resp.Data != nil || len(resp.Events) != 1 {
		t.Fatalf("delete: %+v", resp)
	}
	h.fails(engines.OpRead, "keys/keep", nil, engines.ErrNotFound, "")
}

func TestSignVerifyOptions(t *testing.T) {
	h := newHarness(t)
	h.write("keys/rsa", map[string]any{"type": "rsa-2048"})
	h.write("keys/ec", map[string]any{"type": "ecdsa-p384"})
	input := b64("message")
	sha384 := encodeStd(digest(hashes["sha2-384"], []byte("message")))
	cases := []struct {
		name, key, path string
		opts            map[string]any
	}{
		{"rsa pss default", "rsa", "", nil},
		{"rsa pkcs1v15", "rsa", "", map[string]any{"signature_algorithm": "pkcs1v15"}},
		{"rsa sha2-512 in url", "rsa", "/sha2-512", nil},
		{"rsa sha2-224", "rsa", "", map[string]any{"hash_algorithm": "sha2-224"}},
		{"rsa sha3-256", "rsa", "", map[string]any{"hash_algorithm": "sha3-256"}},
		{"rsa pss salt hash", "rsa", "", map[string]any{"salt_length": "hash"}},
		{"rsa jws", "rsa", "", map[string]any{"marshaling_algorithm": "jws"}},
		{"ec default sha2-256 (crypto/ecdsa)", "ec", "", nil},
		{"ec sha2-384 (tink)", "ec", "/sha2-384", nil},
		{"ec jws (tink)", "ec", "", map[string]any{"hash_algorithm": "sha2-384", "marshaling_algorithm": "jws"}},
		{"ec jws (crypto/ecdsa)", "ec", "", map[string]any{"marshaling_algorithm": "jws"}},
		{"ec prehashed", "ec", "", map[string]any{"prehashed": true, "hash_algorithm": "sha2-384", "input": sha384}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h.t = t
			data := map[string]any{"input": input}
			for k, v := range c.opts {
				data[k] = v
			}
			sig := h.write("sign/"+c.key+c.path, data)["signature"].(string)
			vdata := map[string]any{"signature": sig}
			for k, v := range data {
				vdata[k] = v
			}
			if v := h.write("verify/"+c.key+c.path, vdata); v["valid"] != true {
				t.Fatalf("verify: %v", v)
			}
			vdata["input"] = b64("other message")
			if v := h.write("verify/"+c.key+c.path, vdata); v["valid"] != false {
				t.Fatalf("verify of another message: %v", v)
			}
		})
	}
	h.t = t
	h.bad("sign/rsa", map[string]any{"input": input, "hash_algorithm": "md5"}, `invalid hash algorithm "md5"`)
	h.bad("sign/rsa", map[string]any{"input": input, "signature_algorithm": "raw"}, "unsupported rsa signature algorithm raw")
	h.bad("sign/ec", map[string]any{"input": input, "marshaling_algorithm": "der"}, `invalid marshaling type "der"`)
	h.bad("sign/ec", map[string]any{"input": "%%"}, "")
	h.bad("sign/ec", map[string]any{"input": input, "key_version": 2}, "requested version for signing is higher than the latest key version")
	h.bad("verify/ec", map[string]any{"input": input}, "missing one of 'signature' or 'hmac' arguments to verify")
	h.bad("verify/ec", map[string]any{"input": input, "signature": "vault:v1:AA", "hmac": "vault:v1:AA"}, "provide one of 'signature' or 'hmac'")
	h.bad("verify/ec", map[string]any{"input": input, "signature": "v1:AAAA"}, "invalid signature: no prefix")
	h.bad("verify/ec", map[string]any{"input": input, "signature": "vault:v1:***"}, "invalid base64 signature value")
	if v := h.write("verify/ec", map[string]any{"input": input, "signature": "vault:v1:AAAA"}); v["valid"] != false {
		t.Fatalf("garbage signature: %v", v)
	}
	// Signatures from a version below min_decryption_version no longer verify.
	sig := h.write("sign/ec", map[string]any{"input": input})["signature"].(string)
	h.write("keys/ec/rotate", nil)
	h.write("keys/ec/config", map[string]any{"min_decryption_version": 2})
	h.bad("verify/ec", map[string]any{"input": input, "signature": sig}, "ciphertext or signature version is disallowed by policy (too old)")

	// Batch sign and verify: per-item errors, HTTP 200, as Vault.
	resp := h.ok(engines.OpUpdate, "sign/rsa", map[string]any{"batch_input": []any{
		map[string]any{"input": input, "reference": "a"}, map[string]any{"input": "%%", "reference": "b"}, map[string]any{},
	}})
	status, res := batchResults(t, resp)
	if status != 200 || res[0]["signature"] == nil || res[1]["error"] == nil || res[2]["error"] != "missing input" || res[1]["reference"] != "b" {
		t.Fatalf("sign batch %d: %v", status, res)
	}
	resp = h.ok(engines.OpUpdate, "verify/rsa", map[string]any{"batch_input": []any{
		map[string]any{"input": input, "signature": res[0]["signature"]},
		map[string]any{"input": b64("x"), "signature": res[0]["signature"]},
		map[string]any{"input": input, "signature": "nope"},
	}})
	status, vres := batchResults(t, resp)
	if status != 200 || vres[0]["valid"] != true || vres[1]["valid"] != false || vres[2]["error"] != "invalid signature: no prefix" {
		t.Fatalf("verify batch %d: %v", status, vres)
	}
}

func TestHMAC(t *testing.T) {
	h := newHarness(t)
	h.write("keys/mac", map[string]any{"type": "hmac"})
	input := b64("authenticate me")
	for _, alg := range []string{"sha2-224", "sha2-256", "sha2-384", "sha2-512", "sha3-256", "sha3-512"} {
		mac := h.write("hmac/mac/"+alg, map[string]any{"input": input})["hmac"].(string)
		if v := h.write("verify/mac/"+alg, map[string]any{"input": input, "hmac": mac}); v["valid"] != true {
			t.Fatalf("%s: %v", alg, v)
		}
		if v := h.write("verify/mac", map[string]any{"input": input, "hmac": mac, "hash_algorithm": alg}); v["valid"] != true {
			t.Fatalf("%s in body: %v", alg, v)
		}
	}
	mac := h.write("hmac/mac", map[string]any{"input": input})["hmac"].(string)
	h.write("keys/mac/rotate", nil)
	if v := h.write("verify/mac", map[string]any{"input": input, "hmac": mac}); v["valid"] != true {
		t.Fatalf("v1 hmac after rotation: %v", v)
	}
	if m2 := h.write("hmac/mac", map[string]any{"input": input})["hmac"].(string); !strings.HasPrefix(m2, "vault:v2:") || m2 == mac {
		t.Fatalf("hmac after rotation: %s", m2)
	}
	if m1 := h.write("hmac/mac", map[string]any{"input": input, "key_version": 1})["hmac"].(string); m1 != mac {
		t.Fatal("key_version=1 does not reproduce the v1 hmac")
	}
	h.write("keys/mac/config", map[string]any{"min_decryption_version": 2})
	h.bad("verify/mac", map[string]any{"input": input, "hmac": mac}, "cannot verify HMAC: version is too old (disallowed by policy)")
	h.bad("verify/mac", map[string]any{"input": input, "hmac": "vault:v3:AAAA"}, "invalid HMAC: version is too new")
	h.bad("verify/mac", map[string]any{"input": input, "hmac": "vaultv1AAAA"}, "invalid HMAC to verify: no prefix")
	h.bad("hmac/mac/md5", map[string]any{"input": input}, "unsupported algorithm md5")
	h.bad("hmac/mac", map[string]any{"input": "%%"}, "")

	resp := h.ok(engines.OpUpdate, "hmac/mac", map[string]any{"batch_input": []any{
		map[string]any{"input": input}, map[string]any{"input": input}, map[string]any{}, map[string]any{"input": ""},
	}})
	status, res := batchResults(t, resp)
	if status != 200 || res[0]["hmac"] != res[1]["hmac"] || res[2]["error"] != "missing input for HMAC" || res[3]["hmac"] == nil {
		t.Fatalf("hmac batch (Vault's documented sample) %d: %v", status, res)
	}
}

func TestRandomAndHash(t *testing.T) {
	h := newHarness(t)
	if n := len(unb64(t, h.write("random", nil)["random_bytes"])); n != 32 {
		t.Fatalf("default random bytes: %d", n)
	}
	if r := h.write("random/16", map[string]any{"format": "hex"})["random_bytes"].(string); len(r) != 32 {
		t.Fatalf("random/16 hex: %q", r)
	}
	if n := len(unb64(t, h.write("random/platform/64", nil)["random_bytes"])); n != 64 {
		t.Fatalf("random/platform/64: %d", n)
	}
	if n := len(unb64(t, h.write("random/all", map[string]any{"bytes": 8})["random_bytes"])); n != 8 {
		t.Fatalf("random/all bytes=8: %d", n)
	}
	h.bad("random/0", nil, `"bytes" cannot be less than 1`)
	h.bad("random", map[string]any{"bytes": 1 << 20}, `"bytes" should be less than 131072`)
	h.bad("random", map[string]any{"format": "raw"}, `unsupported encoding format "raw"; must be "hex" or "base64"`)
	h.bad("random/moon/8", nil, `unsupported entropy source "moon"; must be "platform" or "seal", or "all"`)
	h.bad("random/x", nil, "")

	// Known answers: SHA-256("abc") and SHA-512("abc").
	if s := h.write("hash", map[string]any{"input": b64("abc")})["sum"]; s != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("sha2-256(abc) = %v", s)
	}
	if s := h.write("hash/sha2-512", map[string]any{"input": b64("abc"), "format": "base64"})["sum"]; s != "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/BqDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw==" {
		t.Fatalf("sha2-512(abc) = %v", s)
	}
	if s := h.write("hash", map[string]any{"input": b64("abc"), "algorithm": "sha3-256"})["sum"]; s != "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532" {
		t.Fatalf("sha3-256(abc) = %v", s)
	}
	h.bad("hash/md5", map[string]any{"input": b64("abc")}, "unsupported algorithm md5")
	h.bad("hash", map[string]any{"input": "%%"}, "")
	h.bad("hash", map[string]any{"input": b64("abc"), "format": "raw"}, `unsupported encoding format raw; must be "hex" or "base64"`)
}

func TestRotateDue(t *testing.T) {
	h := newHarness(t)
	h.write("keys/auto", map[string]any{"auto_rotate_period": "1h"})
	h.write("keys/manual", nil)
	created := h.now
	if evs := h.b.RotateDue(created.Add(59 * time.Minute)); len(evs) != 0 {
		t.Fatalf("rotated too early: %d events", len(evs))
	}
	evs := h.b.RotateDue(created.Add(time.Hour))
	if len(evs) != 1 || evs[0].Type != transitview.KeyRotated {
		t.Fatalf("due events: %v", evs)
	}
	// A second decision against the same state loses when both land.
	again := h.b.RotateDue(created.Add(time.Hour))
	h.apply(evs)
	h.apply(again)
	k, _ := h.view.Get(h.mount.UUID, "auto")
	if k.LatestVersion != 2 {
		t.Fatalf("latest version %d after a duplicated auto-rotation, want 2", k.LatestVersion)
	}
	if evs := h.b.RotateDue(created.Add(90 * time.Minute)); len(evs) != 0 {
		t.Fatal("due again right after rotation")
	}
	// The period is configurable, and 0 turns it off.
	h.write("keys/auto/config", map[string]any{"auto_rotate_period": 0})
	if evs := h.b.RotateDue(created.Add(100 * time.Hour)); len(evs) != 0 {
		t.Fatal("auto-rotation after it was disabled")
	}
	// Another mount's keys are not this backend's business.
	other := New(h.view, engines.Mount{UUID: "other-mount"})
	h.write("keys/auto/config", map[string]any{"auto_rotate_period": "1h"})
	if evs := other.RotateDue(created.Add(100 * time.Hour)); len(evs) != 0 {
		t.Fatal("another mount rotated this mount's key")
	}
}

func TestExistsAndLockKey(t *testing.T) {
	h := newHarness(t)
	h.write("keys/there", nil)
	for _, c := range []struct {
		path   string
		exists bool
		lock   string
	}{
		{"keys/new", true, "new"}, // keys/:name is always an update, as in Vault
		{"keys/there/rotate", true, "there"},
		{"keys/there/config", true, "there"},
		{"encrypt/there", true, ""},
		{"encrypt/new", false, "new"},
		{"decrypt/there", true, ""},
		{"sign/there", true, ""},
		{"random", true, ""},
		{"restore/new", true, "new"},
	} {
		req := h.req(engines.OpUpdate, c.path, nil)
		if got, _ := h.b.Exists(t.Context(), req); got != c.exists {
			t.Errorf("Exists(%s) = %v, want %v", c.path, got, c.exists)
		}
		if got := h.b.LockKey(req); got != c.lock {
			t.Errorf("LockKey(%s) = %q, want %q", c.path, got, c.lock)
		}
	}
}

// TestEngineEventsConformance replays a session's decided events through the view suite.
func TestEngineEventsConformance(t *testing.T) {
	h := newHarness(t)
	h.write("keys/a", map[string]any{"exportable": true, "allow_plaintext_backup": true})
	h.write("keys/a/rotate", nil)
	h.write("keys/a/rotate", nil)
	h.write("keys/a/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 3, "deletion_allowed": true})
	h.write("keys/a/trim", map[string]any{"min_available_version": 2})
	h.write("keys/b", map[string]any{"type": "ed25519"})
	h.write("encrypt/c", map[string]any{"plaintext": b64("x")})
	blob := h.read("backup/a")["backup"].(string)
	h.write("restore/d", map[string]any{"backup": blob})
	h.ok(engines.OpDelete, "keys/a", nil)
	viewtest.Conformance(t, func() projections.View { return transitview.New() }, h.recs)
}
