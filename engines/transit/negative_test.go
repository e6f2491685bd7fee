package transit

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/engines"
)

func decodeStd(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
func encodeStd(b []byte) string          { return base64.StdEncoding.EncodeToString(b) }

// Wycheproof-style negatives: every malformed, truncated, tampered or misdirected ciphertext is
// a 400 with a fixed message, never a panic, never an echo of the input, plaintext or key.
func TestDecryptNegatives(t *testing.T) {
	const secret = "the plaintext must never show"
	for _, typ := range []string{typeAES128, typeAES256, typeChaCha20, typeRSA2048} {
		t.Run(typ, func(t *testing.T) {
			h := newHarness(t)
			h.write("keys/k", map[string]any{"type": typ, "exportable": true})
			h.write("keys/d", map[string]any{"type": typ, "derived": typ != typeRSA2048})
			ct := h.encrypt("k", secret, nil)
			i := strings.LastIndexByte(ct, ':')
			raw, _ := decodeStd(ct[i+1:])
			h.write("keys/k/rotate", nil)
			h.write("keys/k/config", map[string]any{"min_decryption_version": 2})
			h.write("keys/k/config", map[string]any{"min_decryption_version": 1})

			cases := []struct {
				name, ciphertext, msg string
				data                  map[string]any
			}{
				{"empty", "", "missing ciphertext to decrypt", nil},
				{"no prefix", ct[len("vault:"):], "invalid ciphertext: no prefix", nil},
				{"wrong scheme", "vault:x1:" + ct[i+1:], "invalid ciphertext: no prefix", nil},
				{"one field", "vault:v1", "invalid ciphertext: wrong number of fields", nil},
				{"version not a number", "vault:vone:" + ct[i+1:], "invalid ciphertext: version number could not be decoded", nil},
				{"negative version", "vault:v-1:" + ct[i+1:], "invalid ciphertext: version number could not be decoded", nil},
				{"plus version", "vault:v+1:" + ct[i+1:], "invalid ciphertext: version number could not be decoded", nil},
				{"huge version", "vault:v99999999999999999999999:" + ct[i+1:], "invalid ciphertext: version number could not be decoded", nil},
				{"empty version", "vault:v:" + ct[i+1:], "invalid ciphertext: version number could not be decoded", nil},
				{"version too new", "vault:v3:" + ct[i+1:], "invalid ciphertext: version is too new", nil},
				{"wrong version", "vault:v2:" + ct[i+1:], authFailed(typ), nil},
				{"bad base64", "vault:v1:" + ct[i+1:] + "%", "invalid ciphertext: could not decode base64", nil},
				{"url base64", "vault:v1:" + base64.RawURLEncoding.EncodeToString(raw) + "-_", "invalid ciphertext: could not decode base64", nil},
				{"empty payload", "vault:v1:", shortOrFail(typ), nil},
				{"truncated to nonce", "vault:v1:" + encodeStd(raw[:nonceSize]), shortOrFail(typ), nil},
				{"truncated tag", "vault:v1:" + encodeStd(raw[:len(raw)-1]), authFailed(typ), nil},
				{"extended", "vault:v1:" + encodeStd(append(append([]byte{}, raw...), 0)), authFailed(typ), nil},
				{"tampered first byte", "vault:v1:" + encodeStd(flip(raw, 0)), authFailed(typ), nil},
				{"tampered last byte", "vault:v1:" + encodeStd(flip(raw, len(raw)-1)), authFailed(typ), nil},
				{"tampered middle", tamper(ct), authFailed(typ), nil},
				{"zeros", "vault:v1:" + encodeStd(make([]byte, len(raw))), authFailed(typ), nil},
				{"nonce given", ct, "provided nonce not allowed for this key", map[string]any{"nonce": encodeStd(make([]byte, 12))}},
				{"bad context", ct, "illegal base64 data at input byte 0", map[string]any{"context": "%%%"}},
			}
			if typ != typeRSA2048 {
				cases = append(cases, struct {
					name, ciphertext, msg string
					data                  map[string]any
				}{"wrong associated data", ct, authFailed(typ), map[string]any{"associated_data": b64("ad")}})
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					h.t = t
					data := map[string]any{"ciphertext": c.ciphertext}
					for k, v := range c.data {
						data[k] = v
					}
					err := h.bad("decrypt/k", data, c.msg)
					noLeak(t, h, err.Error(), secret)
				})
			}
			h.t = t
			// Derived keys: no context, wrong context.
			if typ != typeRSA2048 {
				dct := h.encrypt("d", secret, map[string]any{"context": b64("right")})
				noLeak(t, h, h.bad("decrypt/d", map[string]any{"ciphertext": dct}, errMissingContext.Error()).Error(), secret)
				noLeak(t, h, h.bad("decrypt/d", map[string]any{"ciphertext": dct, "context": b64("wrong")}, "cipher: message authentication failed").Error(), secret)
				// Another key's ciphertext.
				noLeak(t, h, h.bad("decrypt/k", map[string]any{"ciphertext": dct}, authFailed(typ)).Error(), secret)
			}
			// Bad plaintext base64 on encrypt.
			err := h.bad("encrypt/k", map[string]any{"plaintext": "credit card 1234"}, "illegal base64 data at input byte 6")
			if strings.Contains(err.Error(), "credit") {
				t.Fatal("encrypt error echoes the plaintext")
			}
		})
	}
}

func authFailed(typ string) string {
	if typ == typeRSA2048 {
		return "crypto/rsa: decryption error"
	}
	return "cipher: message authentication failed"
}

func shortOrFail(typ string) string {
	if typ == typeRSA2048 {
		return "crypto/rsa: decryption error"
	}
	return "invalid ciphertext length"
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x80
	return c
}

// noLeak fails when an error message holds the plaintext or any key material of the mount.
func noLeak(t *testing.T, h *harness, msg, plaintext string) {
	t.Helper()
	if strings.Contains(msg, plaintext) || strings.Contains(msg, b64(plaintext)) {
		t.Fatalf("error %q holds the plaintext", msg)
	}
	for _, name := range h.view.List(h.mount.UUID) {
		k, _ := h.view.Get(h.mount.UUID, name)
		for _, v := range k.Versions {
			for _, m := range [][]byte{v.Key, v.HMACKey} {
				if len(m) > 0 && (strings.Contains(msg, encodeStd(m)) || strings.Contains(msg, string(m))) {
					t.Fatalf("error %q holds key material", msg)
				}
			}
		}
	}
}

// FuzzDecrypt throws arbitrary ciphertexts, contexts and associated data at decrypt for every
// symmetric type: a user error or a success, never a panic or an internal error.
func FuzzDecrypt(f *testing.F) {
	h := newHarness(f)
	for _, typ := range []string{typeAES128, typeAES256, typeChaCha20} {
		h.write("keys/"+typ, map[string]any{"type": typ})
		h.write("keys/"+typ+"-d", map[string]any{"type": typ, "derived": true})
		ct := h.encrypt(typ, "seed", nil)
		f.Add(typ, ct, "", "")
		f.Add(typ+"-d", h.encrypt(typ+"-d", "seed", map[string]any{"context": b64("c")}), b64("c"), "")
		f.Add(typ, tamper(ct), "", b64("ad"))
	}
	f.Add(typeAES256, "vault:v0:", "", "")
	f.Add(typeAES256, "vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "")
	f.Fuzz(func(t *testing.T, key, ciphertext, ctx, ad string) {
		switch key {
		case typeAES128, typeAES256, typeChaCha20, typeAES128 + "-d", typeAES256 + "-d", typeChaCha20 + "-d":
		default:
			key = typeAES256
		}
		data := map[string]any{"ciphertext": ciphertext}
		if ctx != "" {
			data["context"] = ctx
		}
		if ad != "" {
			data["associated_data"] = ad
		}
		req := &engines.Request{Op: engines.OpUpdate, Path: "decrypt/" + key, Data: data, Mount: h.mount}
		resp, err := h.b.HandleRequest(context.Background(), req)
		if err != nil && !errors.Is(err, engines.ErrBadRequest) {
			t.Fatalf("decrypt %q: non-user error %v", ciphertext, err)
		}
		if err == nil && resp.Data["plaintext"] == nil {
			t.Fatalf("decrypt %q: success without plaintext", ciphertext)
		}
		// Batch form, too.
		req.Data = map[string]any{"batch_input": []any{data}}
		if _, err := h.b.HandleRequest(context.Background(), req); err != nil && !errors.Is(err, engines.ErrBadRequest) {
			t.Fatalf("batch decrypt %q: non-user error %v", ciphertext, err)
		}
	})
}

// FuzzVerify does the same for signature and HMAC envelopes.
func FuzzVerify(f *testing.F) {
	h := newHarness(f)
	h.write("keys/ed", map[string]any{"type": "ed25519"})
	h.write("keys/ec", map[string]any{"type": "ecdsa-p256"})
	sig := h.write("sign/ed", map[string]any{"input": b64("m")})["signature"].(string)
	f.Add("ed", sig, "", "")
	f.Add("ec", sig, "jws", "")
	f.Add("ec", "vault:v1:MAYCAQECAQE=", "", "sha2-256")
	f.Fuzz(func(t *testing.T, key, sig, marshaling, hmacOrAlg string) {
		if key != "ed" && key != "ec" {
			key = "ec"
		}
		data := map[string]any{"input": b64("m"), "signature": sig, "marshaling_algorithm": marshaling, "hash_algorithm": hmacOrAlg}
		req := &engines.Request{Op: engines.OpUpdate, Path: "verify/" + key, Data: data, Mount: h.mount}
		if _, err := h.b.HandleRequest(context.Background(), req); err != nil && !errors.Is(err, engines.ErrBadRequest) {
			t.Fatalf("verify %q: non-user error %v", sig, err)
		}
		req.Data = map[string]any{"input": b64("m"), "hmac": sig}
		if _, err := h.b.HandleRequest(context.Background(), req); err != nil && !errors.Is(err, engines.ErrBadRequest) {
			t.Fatalf("hmac verify %q: non-user error %v", sig, err)
		}
	})
}
