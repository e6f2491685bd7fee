package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	vault "github.com/hashicorp/vault/api"
	amqp "github.com/rabbitmq/amqp091-go"
)

// cpuSeconds is the process's user+system CPU time: the figure a loaded machine does not
// stretch.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// fillSecrets writes n secrets (and reads each once) from 4 workers.
func fillSecrets(b *testing.B, root *vault.Client, prefix string, n int) {
	b.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 4 {
				p := fmt.Sprintf("%s/%05d", prefix, i)
				if _, err := root.KVv2("secret").Put(context.Background(), p, map[string]any{"v": "x"}); err != nil {
					errs <- err
					return
				}
				if _, err := root.KVv2("secret").Get(context.Background(), p); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// BenchmarkEventsWebSocket: events delivered per second to one WebSocket subscriber replaying
// N committed writes (from_index=1): reading the log, opening and translating each KV event,
// the ACL check and the WebSocket write.
func BenchmarkEventsWebSocket(b *testing.B) {
	const n = 2000
	s := startServer(b)
	root := s.Client(b, s.RootToken)
	fillSecrets(b, root, "bench", n)
	for _, who := range []string{"root", "policy"} {
		b.Run(who, func(b *testing.B) {
			tok := s.RootToken
			if who == "policy" {
				if err := root.Sys().PutPolicy("bench-sub", `
path "sys/events/subscribe/*" { capabilities = ["read"] }
path "secret/data/bench/*" { capabilities = ["read", "subscribe"] }`); err != nil {
					b.Fatal(err)
				}
				t, err := root.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"bench-sub"}})
				if err != nil {
					b.Fatal(err)
				}
				tok = t.Auth.ClientToken
			}
			b.ResetTimer()
			cpu0, t0 := cpuSeconds(), time.Now()
			for range b.N {
				u := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/sys/events/subscribe/kv-v2/data-write?" + url.Values{"json": {"true"}, "from_index": {"1"}}.Encode()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: map[string][]string{"X-Vault-Token": {tok}}})
				if err != nil {
					b.Fatal(err)
				}
				conn.SetReadLimit(1 << 20)
				for i := 0; i < n; i++ {
					if _, _, err := conn.Read(ctx); err != nil {
						b.Fatalf("event %d: %v", i, err)
					}
				}
				conn.CloseNow()
				cancel()
			}
			el, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
			b.ReportMetric(float64(n*b.N)/el, "events/s")
			b.ReportMetric(float64(n*b.N)/cpu, "events/cpu-s")
		})
	}
}

// BenchmarkAuditSinks: entries per second an audit device of each type ships when it backfills
// the trail of N writes and N reads (2 entries per record in Vault's JSON). Brokers that are
// not running are skipped.
func BenchmarkAuditSinks(b *testing.B) {
	const n = 1000
	s := startServer(b)
	root := s.Client(b, s.RootToken)
	fillSecrets(b, root, "sink", n)
	dir := b.TempDir()
	rabbit := os.Getenv("LEDGER_TEST_RABBITMQ_URL")
	if rabbit == "" {
		rabbit = "amqp://guest:guest@127.0.0.1:5672/"
	}
	mqttURL := os.Getenv("LEDGER_TEST_MQTT_URL")
	if mqttURL == "" {
		mqttURL = "tcp://127.0.0.1:1883"
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	sinks := []struct {
		name string
		opts vault.EnableAuditOptions
	}{
		{"file", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "a.log")}}},
		{"file-ocsf", vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "o.log"), "format": "ocsf"}}},
		{"nats", vault.EnableAuditOptions{Type: "nats", Options: map[string]string{"subject": "bench.audit"}}},
		{"rabbitmq", vault.EnableAuditOptions{Type: "rabbitmq", Options: map[string]string{"url": rabbit, "exchange": "amq.fanout", "routing_key": "x"}}},
		{"mqtt", vault.EnableAuditOptions{Type: "mqtt", Options: map[string]string{"broker": mqttURL, "topic": "ledger/bench/" + suffix, "client_id": "ledger-bench-" + suffix}}},
	}
	for i, sk := range sinks {
		b.Run(sk.name, func(b *testing.B) {
			for r := range b.N {
				path := fmt.Sprintf("b%d-%d", i, r)
				sk.opts.Options["backfill"] = "true"
				if err := root.Sys().EnableAuditWithOptions(path, &sk.opts); err != nil {
					b.Skipf("%s: %v", sk.name, err)
				}
				if sk.name == "rabbitmq" {
					// amq.fanout with no queue bound would return every message (mandatory);
					// bind a throwaway queue.
					if err := bindBenchQueue(rabbit, suffix); err != nil {
						b.Skipf("rabbitmq: %v", err)
					}
				}
				want := 4.0 * n // a request and a response entry per write and per read
				if sk.opts.Options["format"] != "" {
					want = 2 * n // SIEM formats: one line per record
				}
				cpu0, t0 := cpuSeconds(), time.Now()
				var delivered float64
				for {
					_, data := sysLedger2(b, s, "devices")
					list, _ := data["devices"].([]any)
					for _, d := range list {
						m, _ := d.(map[string]any)
						if m["path"] == path+"/" {
							delivered, _ = m["delivered"].(float64)
							if pend, _ := m["pending"].(float64); pend == 0 && delivered >= want && m["healthy"] == true {
								goto done
							}
						}
					}
					if time.Since(t0) > 5*time.Minute {
						b.Fatalf("%s: %v entries after 5 minutes", sk.name, delivered)
					}
					time.Sleep(20 * time.Millisecond)
				}
			done:
				el, cpu := time.Since(t0).Seconds(), cpuSeconds()-cpu0
				b.ReportMetric(delivered/el, "entries/s")
				b.ReportMetric(delivered/cpu, "entries/cpu-s")
				root.Sys().DisableAudit(path)
			}
		})
	}
}

// sysLedger2 reads sys/ledger/audit/<path> as root, for benchmarks.
func sysLedger2(b *testing.B, s *testServer, path string) (int, map[string]any) {
	b.Helper()
	req, _ := http.NewRequest("GET", s.URL+"/v1/sys/ledger/audit/"+path, nil)
	req.Header.Set("X-Vault-Token", s.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var env struct {
		Data map[string]any `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&env)
	return resp.StatusCode, env.Data
}

// bindBenchQueue binds a throwaway queue to amq.fanout, deleted when the benchmark ends.
func bindBenchQueue(raw, suffix string) error {
	conn, err := amqp.Dial(raw)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q := "ledger-bench-" + suffix
	if _, err := ch.QueueDeclare(q, false, false, false, false, amqp.Table{"x-expires": int32(600000)}); err != nil {
		return err
	}
	return ch.QueueBind(q, "", "amq.fanout", false, nil)
}
