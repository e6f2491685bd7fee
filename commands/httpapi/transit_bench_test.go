package httpapi_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// BenchmarkTransitHTTP measures transit encrypt and decrypt of 64-byte payloads over loopback
// HTTP, single and batch_input of 100, at 1, 16 and 64 clients, beside raw Tink AES-256-GCM in
// the same process (the ceiling), and AppRole logins/s. Run with -benchtime 1x.
func BenchmarkTransitHTTP(b *testing.B) {
	kh, _ := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	raw, _ := aead.New(kh)
	payload := make([]byte, 64)
	var rawRate float64
	b.Run("raw-tink-aead", func(b *testing.B) {
		r := hammer(b, 2, func(int, int) error { _, err := raw.Encrypt(payload, nil); return err })
		rawRate = r.rate
		b.ReportMetric(r.rate, "encrypts/s")
	})

	s := startServer(b)
	root := s.Client(b, s.RootToken)
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		b.Fatal(err)
	}
	if _, err := root.Logical().Write("transit/keys/bench", nil); err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	pt := base64.StdEncoding.EncodeToString(payload)
	single := []byte(`{"plaintext":"` + pt + `"}`)
	items := make([]string, 100)
	for i := range items {
		items[i] = `{"plaintext":"` + pt + `"}`
	}
	batch := []byte(`{"batch_input":[` + strings.Join(items, ",") + `]}`)
	ct, err := root.Logical().Write("transit/encrypt/bench", map[string]any{"plaintext": pt})
	if err != nil {
		b.Fatal(err)
	}
	dec, _ := json.Marshal(map[string]any{"ciphertext": ct.Data["ciphertext"]})
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("encrypt/c=%d", conc), func(b *testing.B) {
			r := hammer(b, conc, func(int, int) error {
				return do(client, "POST", s.URL+"/v1/transit/encrypt/bench", s.RootToken, single)
			})
			report(b, r, "ops/s")
			b.ReportMetric(r.rate/rawRate, "x-raw-tink")
		})
		b.Run(fmt.Sprintf("decrypt/c=%d", conc), func(b *testing.B) {
			report(b, hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/transit/decrypt/bench", s.RootToken, dec) }), "ops/s")
		})
		b.Run(fmt.Sprintf("encrypt-batch100/c=%d", conc), func(b *testing.B) {
			r := hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/transit/encrypt/bench", s.RootToken, batch) })
			report(b, r, "requests/s")
			b.ReportMetric(r.rate*100, "items/s")
		})
	}

	if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		b.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/approle/role/bench", map[string]any{"token_policies": "default", "token_ttl": "1h"}); err != nil {
		b.Fatal(err)
	}
	rid, _ := root.Logical().Read("auth/approle/role/bench/role-id")
	sid, _ := root.Logical().Write("auth/approle/role/bench/secret-id", nil)
	login, _ := json.Marshal(map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
	for _, conc := range []int{1, 16} {
		b.Run(fmt.Sprintf("approle-login/c=%d", conc), func(b *testing.B) {
			report(b, hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/auth/approle/login", "", login) }), "logins/s")
		})
	}
}
