package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// The lesson's transit example, verbatim but for the binary; then rotation, rewrap and
// crypto-shredding old versions with min_decryption_version.
func TestE2ETransitLesson(t *testing.T) {
	c := newCLI(t)
	c.ok("secrets", "enable", "transit")
	c.ok("write", "-f", "transit/keys/myapp-key")
	plaintext := base64.StdEncoding.EncodeToString([]byte("credit-card-1234\n")) // $(echo "credit-card-1234" | base64)
	v1 := strings.TrimSpace(c.ok("write", "-field=ciphertext", "transit/encrypt/myapp-key", "plaintext="+plaintext))
	if !strings.HasPrefix(v1, "vault:v1:") {
		t.Fatalf("ciphertext %q", v1)
	}
	if got := strings.TrimSpace(c.ok("write", "-field=plaintext", "transit/decrypt/myapp-key", "ciphertext="+v1)); got != plaintext {
		t.Fatalf("decrypt gave %q", got)
	}

	c.ok("write", "-f", "transit/keys/myapp-key/rotate")
	v2 := strings.TrimSpace(c.ok("write", "-field=ciphertext", "transit/encrypt/myapp-key", "plaintext="+plaintext))
	if !strings.HasPrefix(v2, "vault:v2:") {
		t.Fatalf("after rotate: %q", v2)
	}
	if got := strings.TrimSpace(c.ok("write", "-field=plaintext", "transit/decrypt/myapp-key", "ciphertext="+v1)); got != plaintext {
		t.Fatal("a v1 ciphertext no longer decrypts after rotation")
	}
	rewrapped := strings.TrimSpace(c.ok("write", "-field=ciphertext", "transit/rewrap/myapp-key", "ciphertext="+v1))
	if !strings.HasPrefix(rewrapped, "vault:v2:") {
		t.Fatalf("rewrap gave %q", rewrapped)
	}
	c.ok("write", "transit/keys/myapp-key/config", "min_decryption_version=2")
	r := c.run("write", "transit/decrypt/myapp-key", "ciphertext="+v1)
	if r.code != 2 || !strings.Contains(r.stderr, "Code: 400") {
		t.Fatalf("v1 below min_decryption_version: %s", r)
	}
	if got := strings.TrimSpace(c.ok("write", "-field=plaintext", "transit/decrypt/myapp-key", "ciphertext="+rewrapped)); got != plaintext {
		t.Fatal("the rewrapped ciphertext does not decrypt")
	}
	// Bad input: not base64, and a signing request to an AES key.
	expect(t, c.run("write", "transit/encrypt/myapp-key", "plaintext=%%%not-base64"), 2, "Code: 400")
	expect(t, c.run("write", "transit/sign/myapp-key", "input="+plaintext), 2, "Code: 400")
}
