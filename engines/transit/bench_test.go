package transit

import (
	"testing"

	aeadsubtle "github.com/tink-crypto/tink-go/v2/aead/subtle"
	"github.com/tink-crypto/tink-go/v2/subtle/random"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/ledger-secrets/ledger/engines"
)

// BenchmarkRawAEAD measures the raw Tink primitives the engine uses, without the engine around
// them: one encryption (or decryption) of a 64-byte payload per op, so ops/s = 1e9 / ns/op.
func BenchmarkRawAEAD(b *testing.B) {
	payload := random.GetRandomBytes(64)
	for _, c := range []struct {
		name string
		key  int
		new  func([]byte) (tink.AEAD, error)
	}{
		{"aes128-gcm96", 16, func(k []byte) (tink.AEAD, error) { return aeadsubtle.NewAESGCM(k) }},
		{"aes256-gcm96", 32, func(k []byte) (tink.AEAD, error) { return aeadsubtle.NewAESGCM(k) }},
		{"chacha20-poly1305", 32, func(k []byte) (tink.AEAD, error) { return aeadsubtle.NewChaCha20Poly1305(k) }},
	} {
		a, err := c.new(random.GetRandomBytes(uint32(c.key)))
		if err != nil {
			b.Fatal(err)
		}
		ct, err := a.Encrypt(payload, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/encrypt", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Encrypt(payload, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
		b.Run(c.name+"/decrypt", func(b *testing.B) {
			b.SetBytes(int64(len(payload)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := a.Decrypt(ct, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
		})
	}
}

// BenchmarkEncryptEndpoint measures encrypt/:name through HandleRequest (field parsing, view
// lookup, Tink AEAD, envelope), for comparison with the raw primitive.
func BenchmarkEncryptEndpoint(b *testing.B) {
	h := newHarness(b)
	h.write("keys/bench", nil)
	pt := encodeStd(random.GetRandomBytes(64))
	req := &engines.Request{Op: engines.OpUpdate, Path: "encrypt/bench", Mount: h.mount}
	b.ReportAllocs()
	for b.Loop() {
		req.Data = map[string]any{"plaintext": pt}
		if _, err := h.b.HandleRequest(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
