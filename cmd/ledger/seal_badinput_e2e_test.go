package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"

	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// TestAutoSealBadInputs: each mistake is a clear error and leaves a usable server.
func TestAutoSealBadInputs(t *testing.T) {
	emu := hosttools.StartLocalKMS(t)
	kc := kmsClient(emu.Endpoint())
	good := createKMSKey(t, kc, "", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	other := createKMSKey(t, kc, "", types.KeySpecSymmetricDefault, types.KeyUsageTypeEncryptDecrypt)
	signOnly := createKMSKey(t, kc, "", types.KeySpecRsa2048, types.KeyUsageTypeSignVerify)

	t.Run("config mistakes stop the server with the reason", func(t *testing.T) {
		s := newSealServer(t, awskmsStanza(emu.Endpoint(), good)+transitStanza("http://127.0.0.1:1", "t", false))
		if out := s.runExpectingExit(); !strings.Contains(out, "two seals are enabled") {
			t.Errorf("two enabled seals: %s", out)
		}
		s.sealHCL = "seal \"awskms\" {\n  region = \"us-east-1\"\n}\n"
		if out := s.runExpectingExit(); !strings.Contains(out, "needs kms_key_id") {
			t.Errorf("no kms_key_id: %s", out)
		}
	})

	t.Run("a key that cannot encrypt fails init, nothing written", func(t *testing.T) {
		s := newSealServer(t, awskmsStanza(emu.Endpoint(), signOnly))
		s.start()
		code, body := s.raw(http.MethodPut, "sys/init", "", `{"recovery_shares":1,"recovery_threshold":1}`)
		if code != http.StatusBadRequest || !strings.Contains(body, "awskms") || !strings.Contains(body, signOnly) {
			t.Fatalf("init with a sign-only key: %d %s", code, body)
		}
		if st := s.status(); st.Initialized {
			t.Fatal("initialized after a failed init")
		}
		// Fixed config: the same server inits.
		s.restart(awskmsStanza(emu.Endpoint(), good))
		initAutoSealed(t, s, `{"recovery_shares":1,"recovery_threshold":1}`)
		s.waitSealed(false, 10*time.Second)
	})

	t.Run("a KMS that never answers: init bounded, then works", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var held []net.Conn
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				held = append(held, c) // accept, read nothing, answer nothing
			}
		}()
		t.Cleanup(func() { ln.Close() })
		s := newSealServer(t, awskmsStanza("http://"+ln.Addr().String(), good))
		s.start()
		start := time.Now()
		code, body := s.raw(http.MethodPut, "sys/init", "", `{"recovery_shares":1,"recovery_threshold":1}`)
		if took := time.Since(start); took > 15*time.Second {
			t.Errorf("init against a silent KMS took %s (LEDGER_SEAL_CALL_TIMEOUT is 3s)", took)
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "unreachable") {
			t.Fatalf("init against a silent KMS: %d %s", code, body)
		}
		s.restart(awskmsStanza(emu.Endpoint(), good))
		initAutoSealed(t, s, `{"recovery_shares":1,"recovery_threshold":1}`)
		s.waitSealed(false, 10*time.Second)
	})

	t.Run("the wrong KMS key leaves the server sealed, not retrying; the right one unseals", func(t *testing.T) {
		s := newSealServer(t, awskmsStanza(emu.Endpoint(), good))
		s.start()
		initAutoSealed(t, s, `{"recovery_shares":1,"recovery_threshold":1}`)
		s.waitSealed(false, 10*time.Second)
		s.restart(awskmsStanza(emu.Endpoint(), other))
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(s.stderr.String(), "not retrying") {
			if time.Now().After(deadline) {
				t.Fatalf("wrong key not reported:\n%s", s.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if line := lastLine(s.stderr.String(), "not retrying"); !strings.Contains(line, other) {
			t.Errorf("the log line does not name the key: %s", line)
		}
		if st := s.status(); !st.Sealed {
			t.Fatal("unsealed with the wrong key")
		}
		s.restart(awskmsStanza(emu.Endpoint(), good))
		s.waitSealed(false, 20*time.Second)
	})
}
