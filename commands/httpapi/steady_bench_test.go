package httpapi_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// BenchmarkSteadyState is issue 10's comparison, all in one run on one server, 16 clients over
// real loopback HTTP: sys/health (the path's ceiling), KV write of new keys, KV overwrites of
// 1,000 keys that already hold max_versions (10) versions — every write trims one — KV read,
// transit encrypt and token create. Ratios are to the same run's figures, since absolute
// rates on this shared machine move by 2× between runs. Run with -benchtime 1x.
func BenchmarkSteadyState(b *testing.B) {
	const conc = 16
	s := startServer(b)
	root := s.Client(b, s.RootToken)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128, MaxConnsPerHost: 128}}
	tok := s.RootToken
	value := []byte(`{"data":{"username":"app","password":"` + strings.Repeat("p", 32) + `"}}`)
	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		b.Fatal(err)
	}
	if _, err := root.Logical().Write("transit/keys/bench", nil); err != nil {
		b.Fatal(err)
	}
	// 1,000 paths, each filled to max_versions (10), by 16 clients.
	fill := hammerN(b, conc, 1000*10, func(n int) error {
		return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, n%1000), tok, value)
	})
	if fill != nil {
		b.Fatal(fill)
	}
	var health, fresh float64
	b.Run("health", func(b *testing.B) {
		r := hammer(b, conc, func(int, int) error { return do(client, "GET", s.URL+"/v1/sys/health", "", nil) })
		health = r.rate
		report(b, r, "ops/s")
	})
	b.Run("kv-write-new", func(b *testing.B) {
		r := hammer(b, conc, func(w, i int) error {
			return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/new/w%d/%d", s.URL, w, i), tok, value)
		})
		fresh = r.rate
		report(b, r, "ops/s")
	})
	b.Run("kv-overwrite-past-max-versions", func(b *testing.B) {
		r := hammer(b, conc, func(w, i int) error {
			return do(client, "POST", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, (w*1000/conc+i)%1000), tok, value)
		})
		report(b, r, "ops/s")
		b.ReportMetric(r.rate/fresh, "x-new-key-write")
	})
	b.Run("kv-read", func(b *testing.B) {
		r := hammer(b, conc, func(w, i int) error {
			return do(client, "GET", fmt.Sprintf("%s/v1/secret/data/steady/%d", s.URL, (w*61+i)%1000), tok, nil)
		})
		report(b, r, "ops/s")
		b.ReportMetric(r.rate/health, "x-health")
	})
	b.Run("transit-encrypt", func(b *testing.B) {
		body := []byte(`{"plaintext":"` + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("s", 64))) + `"}`)
		r := hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/transit/encrypt/bench", tok, body) })
		report(b, r, "ops/s")
		b.ReportMetric(r.rate/health, "x-health")
	})
	b.Run("token-create", func(b *testing.B) {
		req := []byte(`{"policies":["default"],"ttl":"1h"}`)
		report(b, hammer(b, conc, func(int, int) error { return do(client, "POST", s.URL+"/v1/auth/token/create", tok, req) }), "ops/s")
	})
}

// hammerN runs op n times (argument 0..n-1) from conc workers.
func hammerN(_ testing.TB, conc, n int, op func(int) error) error {
	errs := make(chan error, conc)
	next := make(chan int)
	go func() {
		for i := range n {
			next <- i
		}
		close(next)
	}()
	for range conc {
		go func() {
			var err error
			for i := range next {
				if err == nil {
					err = op(i)
				}
			}
			errs <- err
		}()
	}
	var first error
	for range conc {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}
