package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// kmsClient talks to the emulator with the real SDK, as an operator's tooling would.
func kmsClient(endpoint string) *kms.Client {
	return kms.New(kms.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")})
}

// createKMSKey makes a symmetric key (or, with usage SIGN_VERIFY, one that cannot encrypt)
// and, when alias is set, names it.
func createKMSKey(t testing.TB, c *kms.Client, alias string, spec types.KeySpec, usage types.KeyUsageType) string {
	t.Helper()
	ctx := context.Background()
	out, err := c.CreateKey(ctx, &kms.CreateKeyInput{KeySpec: spec, KeyUsage: usage})
	if err != nil {
		t.Fatal(err)
	}
	id := *out.KeyMetadata.KeyId
	if alias != "" {
		if _, err := c.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias), TargetKeyId: aws.String(id)}); err != nil {
			t.Fatal(err)
		}
	}
	return id
}

func awskmsStanza(endpoint, keyID string) string {
	// The lesson's stanza, with the endpoint pointed at the emulator.
	return fmt.Sprintf("seal \"awskms\" {\n  region     = \"us-east-1\"\n  kms_key_id = %q\n  endpoint   = %q\n}\n", keyID, endpoint)
}

type recoveryInit struct {
	RecoveryKeys   []string `json:"recovery_keys_base64"`
	RecoveryEscrow bool     `json:"recovery_escrow"`
	RootToken      string   `json:"root_token"`
	Keys           []string `json:"keys_base64"`
}

func initAutoSealed(t *testing.T, s *sealServer, body string) recoveryInit {
	t.Helper()
	code, resp := s.raw(http.MethodPut, "sys/init", "", body)
	if code != http.StatusOK {
		t.Fatalf("init: %d %s", code, resp)
	}
	var out recoveryInit
	mustJSON(t, resp, &out)
	return out
}

// TestAutoSealAWSKMS: the lesson's seal "awskms" stanza, against a real KMS emulator through
// the real SDK. The server unseals itself after every restart (clean and kill -9); with the
// emulator down a restarted server stays sealed and says why; when it is back, the server
// unseals by itself. Recovery keys do not unseal an auto-sealed node.
func TestAutoSealAWSKMS(t *testing.T) {
	emu := hosttools.StartLocalKMS(t)
	kc := kmsClient(emu.Endpoint())
	createKMSKey(t, kc, "alias/vault-unseal-key", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)

	s := newSealServer(t, awskmsStanza(emu.Endpoint(), "alias/vault-unseal-key"))
	s.start()
	if st := s.status(); st.Initialized || st.Type != "awskms" || !st.RecoverySeal {
		t.Fatalf("before init: %+v", st)
	}
	// Vault's client and Vault's field names.
	res, err := s.client("").Sys().Init(&vault.InitRequest{RecoveryShares: 3, RecoveryThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.RecoveryKeys) != 3 || len(res.RecoveryKeysB64) != 3 || len(res.Keys) != 0 || res.RootToken == "" {
		t.Fatalf("init answer: %d recovery keys, %d unseal keys", len(res.RecoveryKeys), len(res.Keys))
	}
	st := s.waitSealed(false, 10*time.Second)
	if st.T != 2 || st.N != 3 || st.RecoveryEscrow == nil || *st.RecoveryEscrow {
		t.Fatalf("after init: %+v (want t=2 n=3 recovery_escrow=false)", st)
	}
	c := s.client(res.RootToken)
	want := writeSecrets(t, c, true, 5)

	t.Run("recovery keys do not unseal", func(t *testing.T) {
		code, body := s.unsealWith(res.RecoveryKeysB64[:1], "")
		// Unsealed already: Vault answers with the status; Ledger too.
		if code != http.StatusOK || !strings.Contains(body, `"sealed":false`) {
			t.Fatalf("unseal on an unsealed auto-sealed node: %d %s", code, body)
		}
	})

	t.Run("recovery keys authorise generate-root", func(t *testing.T) {
		code, body := s.raw(http.MethodPut, "sys/generate-root/attempt", "", "")
		if code != http.StatusOK {
			t.Fatalf("generate-root attempt: %d %s", code, body)
		}
		var att struct {
			Nonce string `json:"nonce"`
		}
		mustJSON(t, body, &att)
		// A key that is not a recovery key is refused; progress resets.
		bogus := strings.Repeat("A", 44)
		// (Refused at once, or when the threshold is reached; never counted as a success.)
		code, body = s.raw(http.MethodPut, "sys/generate-root/update", "", `{"key":"`+bogus+`","nonce":"`+att.Nonce+`"}`)
		if code == http.StatusOK {
			code, body = s.raw(http.MethodPut, "sys/generate-root/update", "", `{"key":"`+res.RecoveryKeysB64[0]+`","nonce":"`+att.Nonce+`"}`)
			if code != http.StatusBadRequest || !strings.Contains(body, "recovery keys") {
				t.Fatalf("a bogus recovery key at the threshold: %d %s", code, body)
			}
		} else if code != http.StatusBadRequest {
			t.Fatalf("a bogus recovery key: %d %s", code, body)
		}
		// Start again from a clean attempt.
		if code, body := s.raw(http.MethodDelete, "sys/generate-root/attempt", "", ""); code >= 300 {
			t.Fatalf("cancel: %d %s", code, body)
		}
		code, body = s.raw(http.MethodPut, "sys/generate-root/attempt", "", "")
		if code != http.StatusOK {
			t.Fatalf("generate-root attempt: %d %s", code, body)
		}
		mustJSON(t, body, &att)
		var last string
		for _, k := range res.RecoveryKeysB64[:2] {
			code, last = s.raw(http.MethodPut, "sys/generate-root/update", "", `{"key":"`+k+`","nonce":"`+att.Nonce+`"}`)
			if code != http.StatusOK {
				t.Fatalf("generate-root update: %d %s", code, last)
			}
		}
		if !strings.Contains(last, `"complete":true`) || !strings.Contains(last, `"encoded_token":"`) {
			t.Fatalf("generate-root with recovery keys did not complete: %s", last)
		}
	})

	for _, how := range []string{"SIGTERM", "kill -9"} {
		if how == "SIGTERM" {
			s.stop()
		} else {
			s.kill()
		}
		s.start()
		s.waitSealed(false, 20*time.Second)
		checkSecrets(t, c, want)
	}

	// The emulator goes away: a restarted server stays sealed, with a clear message, and
	// answers 503 on data paths.
	emu.Stop()
	s.restart(s.sealHCL)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(s.stderr.String(), "auto-unseal failed") {
		if time.Now().After(deadline) {
			t.Fatalf("no auto-unseal failure logged:\n%s", s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st := s.status(); !st.Sealed {
		t.Fatalf("unsealed without the KMS: %+v", st)
	}
	logLine := lastLine(s.stderr.String(), "auto-unseal failed")
	for _, w := range []string{"awskms", "alias/vault-unseal-key", "retrying"} {
		if !strings.Contains(logLine, w) {
			t.Errorf("log line does not name %q: %s", w, logLine)
		}
	}
	code, body := s.raw(http.MethodGet, "sys/health", "", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "awskms") {
		t.Errorf("health while the KMS is down: %d %s", code, body)
	}
	if code, body := s.raw(http.MethodGet, "secret/data/app/s0", res.RootToken, ""); code != http.StatusServiceUnavailable {
		t.Errorf("read while sealed: %d %s", code, body)
	}
	// Recovery keys given to unseal a sealed auto-sealed node: a clear 400, nothing changes.
	code, body = s.unsealWith(res.RecoveryKeysB64[:1], "")
	if code != http.StatusBadRequest || !strings.Contains(body, "auto-seal") {
		t.Errorf("recovery key to unseal: %d %s", code, body)
	}
	// The emulator returns: the server unseals by itself.
	emu.Start()
	s.waitSealed(false, 30*time.Second)
	checkSecrets(t, c, want)
}

func lastLine(s, containing string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], containing) {
			return lines[i]
		}
	}
	return ""
}
