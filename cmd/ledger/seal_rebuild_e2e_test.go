package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// TestReplayRebuildAutoSealed: `ledger replay rebuild` on a stopped awskms-sealed node, with
// the real binary against the KMS emulator. Given the server's config it asks for no keys:
// the seal's key decrypts the root key, the views are rebuilt and stored as a fresh automatic
// snapshot, and the node auto-unseals from it with every secret there. Without the config,
// or with a config whose KMS key is another one, it refuses, says what to do, and stores
// nothing.
func TestReplayRebuildAutoSealed(t *testing.T) {
	emu := hosttools.StartLocalKMS(t)
	kc := kmsClient(emu.Endpoint())
	createKMSKey(t, kc, "alias/vault-unseal-key", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	createKMSKey(t, kc, "alias/another-key", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)

	s := newSealServer(t, awskmsStanza(emu.Endpoint(), "alias/vault-unseal-key"))
	s.start()
	res := initAutoSealed(t, s, `{"recovery_shares":1,"recovery_threshold":1}`)
	s.waitSealed(false, 10*time.Second)
	want := writeSecrets(t, s.client(res.RootToken), true, 5)
	s.stop()

	cfg := filepath.Join(s.dir, "ledger.hcl")
	data := filepath.Join(s.dir, "data")
	rebuild := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(ledgerBinary(t), append([]string{"replay", "rebuild"}, args...)...)
		cmd.Env = append(os.Environ(), s.env...)
		cmd.Stdin = strings.NewReader("") // no keys: a prompt would fail on EOF
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	autoSnapshots := func() int {
		t.Helper()
		l, auto := storedAutoSnapshots(t, data)
		l.Close()
		return len(auto)
	}
	before := autoSnapshots()

	// No config: the data dir alone cannot reach the key.
	code, out, errs := rebuild("-data-dir", data)
	if code == 0 || !strings.Contains(errs, "awskms") || !strings.Contains(errs, "-config") || strings.Contains(out, "Unseal Key") {
		t.Fatalf("rebuild without the config: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	// Another KMS key: refused, with the reason.
	other := filepath.Join(s.dir, "other.hcl")
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, bytes.Replace(src, []byte("alias/vault-unseal-key"), []byte("alias/another-key"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = rebuild("-config", other)
	if code == 0 || !strings.Contains(errs, "could not decrypt the root key") {
		t.Fatalf("rebuild with another KMS key: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if n := autoSnapshots(); n != before {
		t.Fatalf("refused rebuilds stored snapshots: %d automatic snapshots, %d before", n, before)
	}

	code, out, errs = rebuild("-config", cfg)
	if code != 0 || !strings.Contains(out, "Success! Rebuilt the views") || !hasRow(out, "Rebuilt From", "genesis") {
		t.Fatalf("rebuild with the config: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
	}
	if n := autoSnapshots(); n != before+1 {
		t.Fatalf("%d automatic snapshots after the rebuild, %d before", n, before)
	}

	s.start()
	s.waitSealed(false, 20*time.Second)
	checkSecrets(t, s.client(res.RootToken), want)
}
