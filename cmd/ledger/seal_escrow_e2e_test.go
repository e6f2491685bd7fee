package main

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// TestAutoSealEscrow: the lesson's gotcha (the KMS key deleted) with escrow on and off. With
// escrow, the recovery quorum brings every secret back and the use is in the audit trail;
// without, the recovery keys are refused with the reason. The periodic key check notices the
// scheduled deletion first and says so in the log, sys/health and sys/metrics.
func TestAutoSealEscrow(t *testing.T) {
	emu := hosttools.StartLocalKMS(t)
	kc := kmsClient(emu.Endpoint())

	for _, escrow := range []bool{true, false} {
		name := "escrow off"
		if escrow {
			name = "escrow on"
		}
		t.Run(name, func(t *testing.T) {
			keyID := createKMSKey(t, kc, "", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
			s := newSealServer(t, awskmsStanza(emu.Endpoint(), keyID), "LEDGER_SEAL_CHECK_INTERVAL=1s")
			s.start()
			body := `{"recovery_shares":3,"recovery_threshold":2}`
			if escrow {
				body = `{"recovery_shares":3,"recovery_threshold":2,"recovery_escrow":true}`
			}
			res := initAutoSealed(t, s, body)
			if res.RecoveryEscrow != escrow {
				t.Fatalf("init says recovery_escrow=%v", res.RecoveryEscrow)
			}
			st := s.waitSealed(false, 10*time.Second)
			if st.RecoveryEscrow == nil || *st.RecoveryEscrow != escrow {
				t.Fatalf("seal-status recovery_escrow: %+v", st)
			}
			c := s.client(res.RootToken)
			want := writeSecrets(t, c, true, 5)
			auditLog := filepath.Join(t.TempDir(), "audit.log")
			if err := c.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": auditLog}}); err != nil {
				t.Fatal(err)
			}

			// The key is scheduled for deletion (the emulator then refuses it, as KMS does).
			if _, err := kc.ScheduleKeyDeletion(context.Background(), &kms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID), PendingWindowInDays: aws.Int32(7)}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			defer func() { t.Logf("deletion noticed after %s", time.Since(t0)) }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				_, hb := s.raw(http.MethodGet, "sys/health", "", "")
				_, mb := s.raw(http.MethodGet, "sys/metrics?format=prometheus", res.RootToken, "")
				if strings.Contains(hb, `"seal_key_healthy":false`) && strings.Contains(hb, "PendingDeletion") &&
					strings.Contains(mb, "ledger_seal_key_healthy 0") && strings.Contains(s.stderr.String(), "SEAL KEY UNHEALTHY") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("key deletion not reported:\nhealth %s\nmetrics has gauge: %v", hb, strings.Contains(mb, "ledger_seal_key_healthy"))
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !strings.Contains(lastLine(s.stderr.String(), "SEAL KEY UNHEALTHY"), "escrow is "+map[bool]string{true: "on", false: "OFF"}[escrow]) {
				t.Errorf("the warning does not say whether escrow is on: %s", lastLine(s.stderr.String(), "SEAL KEY UNHEALTHY"))
			}

			// Restart: the KMS refuses the key; the server stays sealed.
			t0 = time.Now()
			s.restart(s.sealHCL)
			t.Logf("restart took %s", time.Since(t0))
			time.Sleep(time.Second)
			if st := s.status(); !st.Sealed {
				t.Fatalf("unsealed with a key pending deletion: %+v", st)
			}
			code, out := s.unsealWith(res.RecoveryKeys[:2], `,"recovery":true`)
			if !escrow {
				if code != http.StatusBadRequest || !strings.Contains(out, "escrow was not enabled") {
					t.Fatalf("recovery unseal without escrow: %d %s", code, out)
				}
				if st := s.status(); !st.Sealed {
					t.Fatal("unsealed without escrow")
				}
				return
			}
			if code != http.StatusOK || !strings.Contains(out, `"sealed":false`) {
				t.Fatalf("recovery unseal: %d %s", code, out)
			}
			checkSecrets(t, c, want)
			if !strings.Contains(s.stderr.String(), "UNSEALED WITH THE RECOVERY ESCROW") {
				t.Error("escrow unseal not logged")
			}
			// The use is in the audit trail.
			deadline = time.Now().Add(20 * time.Second)
			for {
				b, _ := os.ReadFile(auditLog)
				if strings.Contains(string(b), `"recovery_escrow_used":true`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("escrow unseal not in the audit log:\n%s", b)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
