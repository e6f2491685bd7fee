package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestE2EOperatorRekeyAndGenerateRoot walks both maintenance ceremonies with the CLI: a key
// holder leaves (rekey 3/2 → 4/3, keys entered from stdin as from a prompt, progress shown;
// the old keys then fail and the new ones unseal), and the root token is revoked and made
// again (generate-root -init, keys, -decode with the OTP; the token works).
func TestE2EOperatorRekeyAndGenerateRoot(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, addr: withScheme(startUninitializedTestServer(t)), home: t.TempDir()}
	noToken := c.env("VAULT_TOKEN", "")
	r := c.runEnv(noToken, "", "operator", "init", "-key-shares=3", "-key-threshold=2", "-format=json")
	var init initOutput
	if err := json.Unmarshal([]byte(r.stdout), &init); err != nil {
		t.Fatalf("init: %v\n%s", err, r)
	}
	old := init.UnsealKeysB64
	for _, k := range old[:2] {
		c.runEnv(noToken, "", "operator", "unseal", k)
	}

	// Rekey.
	expect(t, c.runEnv(noToken, "", "operator", "rekey", old[0]), 2, "ledger operator rekey -init")
	r = c.runEnv(noToken, "", "operator", "rekey", "-init", "-key-shares=4", "-key-threshold=3")
	if r.code != 0 || !hasRow(r.stdout, "Rekey Progress", "0/2") || !hasRow(r.stdout, "New Shares", "4") {
		t.Fatalf("rekey -init: %s", r)
	}
	expect(t, c.runEnv(noToken, "", "operator", "rekey", "-init", "-key-shares=4", "-key-threshold=3"), 2, "rekey already in progress")
	r = c.runEnv(noToken, old[2]+"\n", "operator", "rekey")
	if r.code != 0 || !hasRow(r.stdout, "Rekey Progress", "1/2") {
		t.Fatalf("first key: %s", r)
	}
	expect(t, c.runEnv(noToken, old[2]+"\n", "operator", "rekey"), 2, "already been provided")
	r = c.runEnv(noToken, old[0]+"\n", "operator", "rekey")
	if r.code != 0 || !strings.Contains(r.stdout, "rekeyed with 4 key shares and a key threshold of 3") {
		t.Fatalf("second key: %s", r)
	}
	newKeys := regexp.MustCompile(`(?m)^Key \d: (\S+)$`).FindAllStringSubmatch(r.stdout, -1)
	if len(newKeys) != 4 {
		t.Fatalf("want 4 new keys: %s", r)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", init.RootToken), "", "operator", "seal"); r.code != 0 {
		t.Fatalf("seal: %s", r)
	}
	c.runEnv(noToken, "", "operator", "unseal", old[0])
	c.runEnv(noToken, "", "operator", "unseal", old[1])
	expect(t, c.runEnv(noToken, "", "operator", "unseal", old[2]), 2, "do not reconstruct the root key")
	for _, k := range newKeys[1:] {
		r = c.runEnv(noToken, "", "operator", "unseal", k[1])
	}
	if !hasRow(r.stdout, "Sealed", "false") {
		t.Fatalf("the new keys did not unseal: %s", r)
	}

	// Generate-root after the root token is revoked.
	if r := c.runEnv(c.env("VAULT_TOKEN", init.RootToken), "", "token", "revoke", "-self"); r.code != 0 {
		t.Fatalf("revoke root: %s", r)
	}
	r = c.runEnv(noToken, "", "operator", "generate-root", "-init")
	otp := regexp.MustCompile(`(?m)^OTP\s+(\S+)$`).FindStringSubmatch(r.stdout)
	if r.code != 0 || otp == nil || len(otp[1]) != 28 || !hasRow(r.stdout, "Progress", "0/3") {
		t.Fatalf("generate-root -init: %s", r)
	}
	r = c.runEnv(noToken, "", "operator", "generate-root", "-status")
	if r.code != 0 || strings.Contains(r.stdout, otp[1]) || !hasRow(r.stdout, "Started", "true") {
		t.Fatalf("generate-root -status: %s", r)
	}
	for i, k := range newKeys[:3] {
		r = c.runEnv(noToken, k[1]+"\n", "operator", "generate-root")
		if r.code != 0 {
			t.Fatalf("generate-root key %d: %s", i, r)
		}
	}
	enc := regexp.MustCompile(`(?m)^Encoded Token\s+(\S+)$`).FindStringSubmatch(r.stdout)
	if enc == nil || !hasRow(r.stdout, "Complete", "true") {
		t.Fatalf("last key: %s", r)
	}
	expect(t, c.runEnv(noToken, "", "operator", "generate-root", "-decode="+enc[1]), 2, "-decode needs -otp")
	r = c.runEnv(noToken, "", "operator", "generate-root", "-decode="+enc[1], "-otp="+otp[1], "-format=json")
	var dec struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &dec); err != nil || !strings.HasPrefix(dec.Token, "hvs.") {
		t.Fatalf("decode: %v %s", err, r)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", dec.Token), "", "token", "lookup"); r.code != 0 || !strings.Contains(r.stdout, "root") {
		t.Fatalf("the generated token: %s", r)
	}
	r = c.runEnv(noToken, "", "operator", "generate-root", "-generate-otp")
	if r.code != 0 || len(strings.TrimSpace(r.stdout)) != 28 {
		t.Fatalf("-generate-otp: %s", r)
	}
	if r := c.runEnv(noToken, "", "operator", "generate-root", "-init", "-otp=short"); r.code != 2 || !strings.Contains(r.stderr, "wrong length") {
		t.Fatalf("short OTP: %s", r)
	}
	if r := c.runEnv(noToken, "", "operator", "generate-root", "-cancel"); r.code != 0 {
		t.Fatalf("cancel: %s", r)
	}
}
