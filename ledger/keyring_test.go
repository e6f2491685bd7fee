package ledger

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"
)

// MAC keeps pooled HMAC states instead of asking Tink's PRF each time; the two must agree on
// every input, including across a wrap and unwrap (the state is rebuilt from the unwrapped
// keyset) and under concurrent use of the pool.
func TestMACMatchesTinkPRF(t *testing.T) {
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if k.macs == nil {
		t.Fatal("the PRF keyset's primary key was not recognised as HMAC-SHA256: MAC would fall back to the slow path")
	}
	k2 := rewrapped(t, k)
	want := func(domain, value string) string {
		out, err := k.prf.ComputePrimaryPRF([]byte(domain+"\x00"+value), sha256.Size)
		if err != nil {
			t.Fatal(err)
		}
		return hex.EncodeToString(out)
	}
	values := []string{"", "a", "s.token", strings.Repeat("x", 100<<10), "\x00\xff", "hvs.CAESI"}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				v := values[(w+i)%len(values)]
				for _, d := range []string{"token", "audit", ""} {
					if got, exp := k.MAC(d, v), want(d, v); got != exp {
						t.Errorf("MAC(%q, %d bytes) = %s, Tink PRF says %s", d, len(v), got, exp)
						return
					}
					if got, exp := k.PrefixedMAC("hmac-sha256:", d, v), "hmac-sha256:"+want(d, v); got != exp {
						t.Errorf("PrefixedMAC(%q, %d bytes) = %s, want %s", d, len(v), got, exp)
						return
					}
					if got, exp := string(k.AppendPrefixedMAC([]byte("{"), "hmac-sha256:", d, v)), "{hmac-sha256:"+want(d, v); got != exp {
						t.Errorf("AppendPrefixedMAC(%q, %d bytes) = %s, want %s", d, len(v), got, exp)
						return
					}
					if got, exp := k2.MAC(d, v), want(d, v); got != exp {
						t.Errorf("unwrapped keyring: MAC(%q, %d bytes) = %s, Tink PRF says %s", d, len(v), got, exp)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	// Domain separation survives the concatenation: "a"+"\x00"+"b" is not "a\x00"+"\x00"+"b".
	if k.MAC("a", "b") == k.MAC("a\x00", "b") {
		t.Fatal("MAC domains collide")
	}
}

// OpenInPlace opens with crypto/cipher's AES-GCM the ciphertexts of a keyset Tink built; it must
// open exactly what Tink's Decrypt opens — every term's ciphertexts after a rotation and a
// wrap/unwrap — and refuse what Tink refuses, on the fast path and on Tink's.
func TestOpenInPlaceMatchesTink(t *testing.T) {
	k1, k2, k3 := termsOfOneKeyring(t)
	for _, k := range []*Keyring{k1, k2, k3} {
		if len(k.gcm) != len(k.terms) {
			t.Fatalf("%d AES-GCM keys recognised for %d terms: OpenInPlace would fall back to Tink", len(k.gcm), len(k.terms))
		}
	}
	slow, err := assemble(k3.aeadHandle, k3.prfHandle, k3.terms)
	if err != nil {
		t.Fatal(err)
	}
	slow.gcm = nil
	ad := []byte("chunk 7 of views/kv")
	for _, size := range []int{0, 1, 31, 4096, 1 << 20} {
		pt := bytes.Repeat([]byte{byte(size)}, size)
		for _, sealer := range []*Keyring{k1, k2} {
			ct, err := sealer.Seal(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			for name, opener := range map[string]*Keyring{"fast": k3, "tink": slow} {
				got, err := opener.OpenInPlace(bytes.Clone(ct), ad)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("%s, %d bytes, term %d: %v (plaintext equal: %v)", name, size, sealer.Term(), err, bytes.Equal(got, pt))
				}
				if want, err := opener.Open(ct, ad); err != nil || !bytes.Equal(want, got) {
					t.Fatalf("%s: Open disagrees: %v", name, err)
				}
				bad := map[string][]byte{
					"other associated data": nil,
					"flipped tag bit":       bytes.Clone(ct),
					"flipped body bit":      bytes.Clone(ct),
					"unknown key id":        bytes.Clone(ct),
					"truncated":             ct[:len(ct)-1],
					"shorter than overhead": ct[:gcmPrefix+gcmIV+gcmTag-1],
				}
				bad["flipped tag bit"][len(ct)-1] ^= 1
				bad["flipped body bit"][gcmPrefix+gcmIV] ^= 0x80
				bad["unknown key id"][2] ^= 0xff
				for what, c := range bad {
					a := ad
					if c == nil {
						c, a = bytes.Clone(ct), []byte("chunk 8 of views/kv")
					}
					if _, err := opener.OpenInPlace(bytes.Clone(c), a); err == nil {
						t.Fatalf("%s: %s opened", name, what)
					}
					if _, err := opener.Open(c, a); err == nil {
						t.Fatalf("%s: Tink opened %s", name, what)
					}
				}
			}
		}
	}
}

// Seal builds Tink's ciphertext with a cipher made once; Tink's own Decrypt must open it under
// the primary key of each term (and of a keyring rebuilt from its wrap), two seals of one
// plaintext must differ (a fresh IV each), and a keyring without the fast path seals with Tink.
func TestSealMatchesTink(t *testing.T) {
	k1, k2, k3 := termsOfOneKeyring(t)
	tinkOnly := tinkSealing(t, k3)
	ad := []byte("batch 12")
	for _, k := range []*Keyring{k1, k2, k3, tinkOnly} {
		if k != tinkOnly && k.sealGCM == nil {
			t.Fatalf("term %d: no fast seal", k.Term())
		}
		for _, size := range []int{0, 1, 4096, 1 << 20} {
			pt := bytes.Repeat([]byte{byte(size)}, size)
			a, err := k.Seal(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			b, err := k.Seal(pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(a, b) {
				t.Fatalf("term %d: two seals of %d bytes are equal", k.Term(), size)
			}
			if len(a) != gcmPrefix+gcmIV+size+gcmTag {
				t.Fatalf("term %d: %d bytes sealed into %d", k.Term(), size, len(a))
			}
			for _, opener := range []*Keyring{k, k3, tinkOnly} {
				if opener.Term() < k.Term() {
					continue
				}
				got, err := opener.aead.Decrypt(a, ad) // Tink's
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("term %d sealed %d bytes; Tink (term %d) opens: %v", k.Term(), size, opener.Term(), err)
				}
			}
			if _, err := k.aead.Decrypt(a, []byte("batch 13")); err == nil {
				t.Fatal("opened under other associated data")
			}
		}
	}
	// The fast path seals under the primary key: the newest term's prefix.
	ct, err := k2.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	old, err := k1.Seal([]byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(ct[:gcmPrefix], old[:gcmPrefix]) {
		t.Fatal("a rotated keyring seals under the old key")
	}
	if _, err := k1.aead.Decrypt(ct, nil); err == nil {
		t.Fatal("the term-1 keyring opened a term-2 ciphertext")
	}
}

// termsOfOneKeyring is a new keyring (term 1), it rotated (term 2), and the term-2 keyring
// wrapped and unwrapped again (what a restarted server builds from the log).
func termsOfOneKeyring(t *testing.T) (k1, k2, k3 *Keyring) {
	t.Helper()
	k1, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if k2, err = k1.Rotate(time.Now()); err != nil {
		t.Fatal(err)
	}
	return k1, k2, rewrapped(t, k2)
}

// rewrapped is k wrapped under a root key and unwrapped again: the keyring a restarted server
// builds from the log.
func rewrapped(t *testing.T, k *Keyring) *Keyring {
	t.Helper()
	root := make([]byte, RootKeySize)
	blob, err := k.Wrap(root)
	if err != nil {
		t.Fatal(err)
	}
	out, err := UnwrapKeyring(root, blob)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tinkSealing is k rebuilt without the fast path: it seals with Tink's own AEAD.
func tinkSealing(t *testing.T, k *Keyring) *Keyring {
	t.Helper()
	tk, err := assemble(k.aeadHandle, k.prfHandle, k.terms)
	if err != nil {
		t.Fatal(err)
	}
	tk.sealGCM = nil
	return tk
}

// SealInto writes into the room it is given (and grows past it), and what it writes is what
// Seal writes: Tink opens it, for the fast path and Tink's own.
func TestSealInto(t *testing.T) {
	_, _, k := termsOfOneKeyring(t)
	tinkOnly := tinkSealing(t, k)
	ad := []byte("record")
	for _, kr := range []*Keyring{k, tinkOnly} {
		buf := make([]byte, 0, 256)
		for _, size := range []int{0, 10, 200, 4096} {
			pt := bytes.Repeat([]byte{'p'}, size)
			ct, err := kr.SealInto(buf, pt, ad)
			if err != nil {
				t.Fatal(err)
			}
			fits := gcmPrefix+gcmIV+size+gcmTag <= cap(buf)
			if aliased := len(ct) > 0 && &ct[0] == &buf[:1][0]; aliased != fits {
				t.Fatalf("%d bytes into a 256-byte buffer: in the buffer %v, want %v", size, aliased, fits)
			}
			got, err := k.aead.Decrypt(ct, ad)
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("%d bytes sealed into a buffer do not open: %v", size, err)
			}
		}
	}
}
