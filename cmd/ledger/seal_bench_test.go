package main

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines/hosttools"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// BenchmarkUnsealBySeal measures one unseal (seal, then unseal again) of an initialised
// in-process server per seal type: Shamir with its 3 keys, and each auto-seal against its real
// service (local-kms, a second Ledger's transit, SoftHSM2). The views are tiny, so the figure
// is dominated by the seal's round trip and the fixed cost of opening the keyring.
func BenchmarkUnsealBySeal(b *testing.B) {
	emu := hosttools.StartLocalKMS(b)
	kc := kmsClient(emu.Endpoint())
	b.Setenv("AWS_ACCESS_KEY_ID", "test")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	keyID := createKMSKey(b, kc, "", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	d, err := startDev(context.Background(), io.Discard, devOptions{Listener: ln, LogLevel: "error"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.close(context.Background()) })
	cfg := vault.DefaultConfig()
	cfg.Address = d.Addr
	tc, err := vault.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	tc.SetToken(d.RootToken)
	if _, err := tc.Logical().Write("sys/mounts/transit", map[string]any{"type": "transit"}); err != nil {
		b.Fatal(err)
	}
	if _, err := tc.Logical().Write("transit/keys/autounseal", nil); err != nil {
		b.Fatal(err)
	}
	hsm := hosttools.StartSoftHSM(b, "bench", "1234")
	b.Setenv("SOFTHSM2_CONF", hsm.Conf)

	for _, sc := range []autoseal.Config{
		{Type: "shamir"},
		{Type: "awskms", Params: map[string]string{"kms_key_id": keyID, "endpoint": emu.Endpoint(), "region": "us-east-1"}},
		{Type: "transit", Params: map[string]string{"address": d.Addr, "token": d.RootToken, "key_name": "autounseal", "mount_path": "transit"}},
		{Type: "pkcs11", Params: map[string]string{"lib": hsm.Lib, "token_label": "bench", "pin": "1234", "key_label": "bench", "generate_key": "true"}},
	} {
		b.Run(sc.Type, func(b *testing.B) {
			ctx := context.Background()
			var opts commands.SealOptions
			if sc.Type != "shamir" {
				w, err := autoseal.Open(ctx, sc, nil)
				if err != nil {
					b.Fatal(err)
				}
				opts.Wrapper = w
			}
			s, err := startServer(ctx, newLogger(io.Discard, "error"), ledger.Options{Dir: b.TempDir()}, commands.Options{Seal: opts}, "", nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.close(ctx)
			res, err := s.core.Init(ctx, commands.InitRequest{SecretShares: 5, SecretThreshold: 3, RecoveryShares: 5, RecoveryThreshold: 3})
			if err != nil {
				b.Fatal(err)
			}
			var total time.Duration
			b.ResetTimer()
			for range b.N {
				s.core.Seal()
				start := time.Now()
				if sc.Type == "shamir" {
					for _, k := range res.Keys[:3] {
						if _, err := s.core.Unseal(ctx, k); err != nil {
							b.Fatal(err)
						}
					}
				} else if err := s.core.AutoUnseal(ctx); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				if !s.core.Unsealed() {
					b.Fatal("still sealed")
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/unseal")
		})
	}
}
