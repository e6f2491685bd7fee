package httpapi_test

import (
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
)

// BenchmarkCeremonies times the two maintenance ceremonies end to end over HTTP with the
// official client, against a 5/3 Shamir server on an in-process JetStream: a rekey (init and
// three current keys, new 5/3 split in force) and a generate-root (init, three keys, decode, the
// token's first lookup-self), beside a seal + three-key unseal in the same run for the ratio.
func BenchmarkCeremonies(b *testing.B) {
	s := startCeremonyServer(b, 5, 3)
	keys := s.keys
	s.unseal(keys[:3]...)
	c := s.client("")
	root := s.client(s.root)
	var rekeyT, rootT, unsealT time.Duration
	for b.Loop() {
		start := time.Now()
		up := rekey(b, c, &vault.RekeyInitRequest{SecretShares: 5, SecretThreshold: 3}, keys[:3]...)
		rekeyT += time.Since(start)
		keys = up.Keys

		start = time.Now()
		st, err := c.Sys().GenerateRootInit("", "")
		if err != nil {
			b.Fatal(err)
		}
		done := generateRoot(b, c, st.Nonce, keys[:3]...)
		tok, err := commands.DecodeRootToken(done.EncodedRootToken, st.OTP)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.client(tok).Auth().Token().LookupSelf(); err != nil {
			b.Fatal(err)
		}
		rootT += time.Since(start)

		if err := root.Sys().Seal(); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		s.unseal(keys[2], keys[3], keys[4])
		unsealT += time.Since(start)
	}
	n := float64(b.N)
	b.ReportMetric(float64(rekeyT.Microseconds())/1000/n, "rekey-ms")
	b.ReportMetric(float64(rootT.Microseconds())/1000/n, "generate-root-ms")
	b.ReportMetric(float64(unsealT.Microseconds())/1000/n, "unseal-ms")
	b.ReportMetric(float64(rekeyT)/float64(unsealT), "rekey/unseal")
}
