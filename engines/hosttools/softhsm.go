package hosttools

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SoftHSM is a SoftHSM2 token initialised for one test, in its own token directory.
type SoftHSM struct {
	// Lib is the PKCS#11 module to load.
	Lib string
	// Conf is the SOFTHSM2_CONF file naming the token directory; set it in the environment of
	// whatever loads Lib.
	Conf       string
	TokenLabel string
	PIN        string
}

// softHSMLibs are where Debian and others put the module.
var softHSMLibs = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// StartSoftHSM installs softhsm2 when missing (Debian's package) and initialises a token
// labelled label with PIN pin in a temp directory.
func StartSoftHSM(t testing.TB, label, pin string) *SoftHSM {
	t.Helper()
	util := Need(t, "softhsm2-util", "softhsm2")
	var lib string
	for _, p := range softHSMLibs {
		if _, err := os.Stat(p); err == nil {
			lib = p
			break
		}
	}
	if lib == "" {
		msg := "hosttools: softhsm2-util is installed but libsofthsm2.so is not in any known place"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", pin+"-so")
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+conf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hosttools: softhsm2-util --init-token: %v\n%s", err, out)
	}
	return &SoftHSM{Lib: lib, Conf: conf, TokenLabel: label, PIN: pin}
}
