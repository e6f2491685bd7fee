package httpapi_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/ledger"
)

type haTestNode struct {
	url  string
	core *commands.Core
	log  *ledger.Log
	hs   *http.Server
	once sync.Once
}

func (n *haTestNode) stop() {
	n.once.Do(func() {
		n.hs.Close()
		n.core.Close()
		n.log.Close()
	})
}

// startHACluster starts three in-process nodes, each with its embedded NATS server in one
// JetStream cluster (R3), its Core with HA and its HTTP API on loopback.
func startHACluster(t *testing.T) []*haTestNode {
	t.Helper()
	return startHAClusterWith(t, httpapi.Options{})
}

// startHAClusterWith is startHACluster with the nodes' HTTP options (Logger and APIAddr are
// set per node).
// Each of cfg may adjust node i's commands.Options.
func startHAClusterWith(t *testing.T, hopts httpapi.Options, cfg ...func(i int, o *commands.Options)) []*haTestNode {
	t.Helper()
	return startHAClusterN(t, 3, hopts, cfg...)
}

// startHAClusterN is startHAClusterWith with n nodes (the streams keep 3 replicas: a fourth
// node joins as a non-voter).
func startHAClusterN(t *testing.T, n int, hopts httpapi.Options, cfg ...func(i int, o *commands.Options)) []*haTestNode {
	t.Helper()
	dir := t.TempDir()
	level := slog.LevelError
	if os.Getenv("LEDGER_TEST_HA_LOG") == "warn" { // to see elections and retries
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var routes, listens []string
	var lns []net.Listener
	for range n {
		route := freeAddr(t)
		listens = append(listens, route)
		routes = append(routes, "nats://"+route)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	nodes := make([]*haTestNode, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			name := fmt.Sprintf("node%d", i+1)
			l, err := ledger.Open(context.Background(), ledger.Options{Dir: filepath.Join(dir, name), Replicas: 3, NodeName: name, Logger: logger,
				Cluster: &ledger.ClusterOptions{Name: "test", Listen: listens[i], Routes: routes}})
			if err != nil {
				errs[i] = err
				return
			}
			api := "http://" + lns[i].Addr().String()
			copts := commands.Options{Logger: logger, Replicas: 3,
				HA: &commands.HAOptions{Node: name, APIAddr: api, TTL: 3 * time.Second}}
			for _, f := range cfg {
				f(i, &copts)
			}
			core, err := commands.New(context.Background(), l, copts)
			if err != nil {
				l.Close()
				errs[i] = err
				return
			}
			o := hopts
			o.Logger, o.APIAddr = logger, api
			hs := &http.Server{Handler: httpapi.New(core, o)}
			go hs.Serve(lns[i])
			nodes[i] = &haTestNode{url: api, core: core, log: l, hs: hs}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node%d: %v", i+1, err)
		}
		t.Cleanup(nodes[i].stop)
	}
	return nodes
}

func haClient(t *testing.T, url, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = url
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

func activeIndex(nodes []*haTestNode, skip int) int {
	for i, n := range nodes {
		if i != skip && !n.core.IsStandby() {
			return i
		}
	}
	return -1
}

// initHACluster initialises the cluster through a standby-to-be, unseals every node and waits
// for an active one.
func initHACluster(t *testing.T, nodes []*haTestNode) *vault.InitResponse {
	t.Helper()
	// Init on whichever node answers: a standby forwards it to the active node.
	var init *vault.InitResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		init, err = haClient(t, nodes[2].url, "").Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("init: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Every node is unsealed separately, as in Vault with Shamir.
	for i, n := range nodes {
		deadline := time.Now().Add(30 * time.Second)
		for {
			st, err := haClient(t, n.url, "").Sys().Unseal(init.KeysB64[0])
			if err == nil && !st.Sealed {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("unseal node%d: %v %+v", i+1, err, st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	deadline = time.Now().Add(30 * time.Second)
	for activeIndex(nodes, -1) < 0 {
		if time.Now().After(deadline) {
			t.Fatal("no active node after unseal")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return init
}

func TestHAClusterOverHTTP(t *testing.T) {
	nodes := startHACluster(t)
	init := initHACluster(t, nodes)
	act := activeIndex(nodes, -1)
	sb := (act + 1) % 3
	t.Logf("active: node%d, writing through standby node%d", act+1, sb+1)

	// sys/health: 473 on a performance standby, 200 with perfstandbyok; 200 on the active.
	if c := healthCode(t, nodes[sb].url, ""); c != 473 {
		t.Errorf("standby health = %d, want 473", c)
	}
	if c := healthCode(t, nodes[sb].url, "?perfstandbyok=true"); c != 200 {
		t.Errorf("standby health perfstandbyok = %d", c)
	}
	if c := healthCode(t, nodes[act].url, ""); c != 200 {
		t.Errorf("active health = %d", c)
	}
	root := haClient(t, nodes[sb].url, init.RootToken)
	if err := root.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount through a standby: %v", err)
	}
	leader, err := root.Sys().Leader()
	if err != nil {
		t.Fatal(err)
	}
	if !leader.HAEnabled || leader.IsSelf || leader.LeaderAddress != nodes[act].url || !leader.PerfStandby {
		t.Errorf("sys/leader on the standby: %+v", leader)
	}

	// Read-your-writes through the standby: the write is forwarded, its response carries the
	// position, and the read that presents it sees the write, answered by the standby itself.
	for i := range 20 {
		wreq := root.NewRequest(http.MethodPost, "/v1/secret/data/ryw")
		if err := wreq.SetJSONBody(map[string]any{"data": map[string]any{"n": i}}); err != nil {
			t.Fatal(err)
		}
		wresp, err := root.RawRequest(wreq)
		if err != nil {
			t.Fatalf("write %d through the standby: %v", i, err)
		}
		idx := wresp.Header.Get("X-Vault-Index")
		wresp.Body.Close()
		if _, err := vault.ParseReplicationState(idx, nil); err != nil {
			t.Fatalf("X-Vault-Index %q does not parse with the Vault client: %v", idx, err)
		}
		req := root.NewRequest(http.MethodGet, "/v1/secret/data/ryw")
		req.Headers.Set("X-Vault-Index", idx)
		resp, err := root.RawRequest(req)
		if err != nil {
			t.Fatalf("read %d presenting %q: %v", i, idx, err)
		}
		var body struct {
			Data struct {
				Data map[string]any `json:"data"`
			} `json:"data"`
		}
		if err := resp.DecodeJSON(&body); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if fmt.Sprint(body.Data.Data["n"]) != fmt.Sprint(i) {
			t.Fatalf("read-your-writes: wrote %d, the standby answered %v", i, body.Data.Data["n"])
		}
		if i == 19 {
			raw, _ := base64.StdEncoding.DecodeString(resp.Header.Get("X-Vault-Index"))
			t.Logf("the standby answered the read itself at %s", raw)
		}
	}
	ryw := haClient(t, nodes[sb].url, init.RootToken)
	ryw.SetReadYourWrites(true)
	for i := range 20 {
		if _, err := ryw.KVv2("secret").Put(context.Background(), "ryw2", map[string]any{"n": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		s, err := ryw.KVv2("secret").Get(context.Background(), "ryw2")
		if err != nil {
			t.Fatal(err)
		}
		if s.Data["n"] != fmt.Sprint(i) {
			t.Fatalf("read-your-writes through standby: wrote %d, read %v", i, s.Data["n"])
		}
	}

	// No forwarding: a write answered with 307 to the active node's api_addr.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hreq, _ := http.NewRequest(http.MethodPost, nodes[sb].url+"/v1/secret/data/x", nil)
	hreq.Header.Set("X-Vault-No-Request-Forwarding", "true")
	hreq.Header.Set("X-Vault-Token", init.RootToken)
	hresp, err := hc.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusTemporaryRedirect || hresp.Header.Get("Location") != nodes[act].url+"/v1/secret/data/x" {
		t.Errorf("no-forwarding write: %d %q", hresp.StatusCode, hresp.Header.Get("Location"))
	}

	// kill the active node: a standby takes over within 15 s and writes through any node work.
	killed := time.Now()
	nodes[act].stop()
	deadline := time.Now().Add(15 * time.Second)
	var next int
	for {
		next = activeIndex(nodes, act)
		if next >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no new active node within 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	other := 3 - act - next
	for {
		_, err := haClient(t, nodes[other].url, init.RootToken).KVv2("secret").Put(context.Background(), "after", map[string]any{"ok": "yes"})
		if err == nil {
			break
		}
		if time.Since(killed) > 15*time.Second {
			t.Fatalf("write through node%d after failover: %v", other+1, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("active node%d stopped; node%d active and a write through node%d acknowledged after %s", act+1, next+1, other+1, time.Since(killed).Round(time.Millisecond))
	s, err := haClient(t, nodes[next].url, init.RootToken).KVv2("secret").Get(context.Background(), "ryw2")
	if err != nil || s.Data["n"] != "19" {
		t.Fatalf("data after failover: %v %v", s, err)
	}
}
