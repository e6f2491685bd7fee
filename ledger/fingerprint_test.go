package ledger

import (
	"strings"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	k, err := NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := k.Fingerprint([]byte("prod-db-2024!"))
	if !strings.HasPrefix(a, FingerprintPrefix) || len(a) != len(FingerprintPrefix)+64 {
		t.Fatalf("fingerprint %q", a)
	}
	if a != k.Fingerprint([]byte("prod-db-2024!")) || a == k.Fingerprint([]byte("prod-db-2024?")) {
		t.Fatal("not a function of the exact bytes")
	}
	if strings.Contains(a, k.MAC("audit", "prod-db-2024!")) || strings.Contains(a, k.MAC("token", "prod-db-2024!")) {
		t.Fatal("fingerprint equals an audit or token HMAC")
	}
	r, err := k.Rotate(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r.Fingerprint([]byte("prod-db-2024!")) != a {
		t.Fatal("rotation changed fingerprints: old values would stop matching")
	}
	blob, err := r.Wrap(make([]byte, RootKeySize))
	if err != nil {
		t.Fatal(err)
	}
	u, err := UnwrapKeyring(make([]byte, RootKeySize), blob)
	if err != nil {
		t.Fatal(err)
	}
	if u.Fingerprint([]byte("prod-db-2024!")) != a {
		t.Fatal("unwrapped keyring fingerprints differently")
	}
	other, _ := NewKeyring(time.Now())
	if other.Fingerprint([]byte("prod-db-2024!")) == a {
		t.Fatal("another keyring gave the same fingerprint: the key is not the keyring's")
	}
}
