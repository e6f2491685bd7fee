package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// localCluster is the README's three-node quick start run as real processes: the shipped
// deploy/local/node{1,2,3}.hcl, each node started with `ledger server -config=nodeN.hcl` from
// one directory. Only the ports differ from the shipped files (free ones, so that the test
// cannot collide with a server someone left on 8201).
type localCluster struct {
	t     testing.TB
	bin   string
	dir   string
	addrs []string // http://host:port of node1..node3
	procs []*exec.Cmd
	logs  []*syncBuffer
	keys  []string
	root  string
	began time.Time
}

// stage logs how long the cluster has been running when a step is done (seen with -v or on
// failure: where the time goes on a loaded machine).
func (c *localCluster) stage(what string) {
	c.t.Logf("%6.1fs %s", time.Since(c.began).Seconds(), what)
}

// haHTTP is the test's own client: a request to a node that hangs fails the test instead of
// hanging it until the suite's timeout.
var haHTTP = &http.Client{Timeout: 30 * time.Second}

func startLocalCluster(t testing.TB) *localCluster {
	t.Helper()
	c := &localCluster{t: t, bin: ledgerBinary(t), dir: t.TempDir(), began: time.Now()}
	src := filepath.Join("..", "..", "deploy", "local")

	// Six free loopback ports: three for the API, three for the cluster routes.
	var ports []string
	for range 6 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, ln.Addr().String())
		ln.Close()
	}
	rename := map[string]string{}
	for i := 1; i <= 3; i++ {
		rename[fmt.Sprintf("127.0.0.1:820%d", i)] = ports[i-1]
		rename[fmt.Sprintf("127.0.0.1:622%d", i)] = ports[i+2]
		c.addrs = append(c.addrs, "http://"+ports[i-1])
	}
	for i := 1; i <= 3; i++ {
		b, err := os.ReadFile(filepath.Join(src, fmt.Sprintf("node%d.hcl", i)))
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		for from, to := range rename {
			text = strings.ReplaceAll(text, from, to)
		}
		if strings.Contains(text, "127.0.0.1:820") || strings.Contains(text, "127.0.0.1:622") {
			t.Fatalf("node%d.hcl has an address the test does not know:\n%s", i, text)
		}
		if err := os.WriteFile(filepath.Join(c.dir, fmt.Sprintf("node%d.hcl", i)), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c.run()
	return c
}

// run starts every node and stops them all when the test ends.
func (c *localCluster) run() {
	t := c.t
	c.procs = make([]*exec.Cmd, len(c.addrs))
	c.logs = make([]*syncBuffer, len(c.addrs))
	for i := range c.addrs {
		c.start(i)
	}
	t.Cleanup(func() {
		defer c.stage("every node stopped")
		for i, p := range c.procs {
			if p != nil {
				p.Process.Kill()
				p.Wait()
			}
			if t.Failed() {
				t.Logf("node%d stderr:\n%s", i+1, c.logs[i].String())
			}
		}
	})
}

// all is every node's index.
func (c *localCluster) all() []int {
	var all []int
	for i := range c.addrs {
		all = append(all, i)
	}
	return all
}

// start runs `ledger server -config=nodeN.hcl` from the cluster's directory (the quick start:
// cd deploy/local), for node index i (0-based).
func (c *localCluster) start(i int) {
	c.t.Helper()
	if c.logs[i] == nil {
		c.logs[i] = &syncBuffer{}
	}
	cmd := exec.Command(c.bin, "server", fmt.Sprintf("-config=node%d.hcl", i+1))
	cmd.Dir = c.dir
	cmd.Stderr = c.logs[i]
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = cmd
}

// kill SIGKILLs node index i and waits for the process to be gone.
func (c *localCluster) kill(i int) {
	c.t.Helper()
	if err := c.procs[i].Process.Kill(); err != nil { // SIGKILL
		c.t.Fatal(err)
	}
	c.procs[i].Wait()
	c.procs[i] = nil
}

// health is node i's sys/health status code (0 when it does not answer).
func (c *localCluster) health(i int) int {
	resp, err := haHTTP.Get(c.addrs[i] + "/v1/sys/health")
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitHealth waits until every listed node's sys/health satisfies ok.
func (c *localCluster) waitHealth(what string, ok func(code int) bool, nodes ...int) {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for _, i := range nodes {
		for !ok(c.health(i)) {
			if time.Now().After(deadline) {
				c.t.Fatalf("node%d: %s: sys/health %d", i+1, what, c.health(i))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// unsealed: active 200, standby 429, performance standby 473; never an error.
func unsealed(code int) bool { return code == 200 || code == 429 || code == 473 }

// cli runs `ledger ARGS...` from the cluster's directory with VAULT_ADDR set to node i, stdin
// given, and returns its standard output; it must succeed within a minute.
func (c *localCluster) cli(i int, stdin string, args ...string) string {
	c.t.Helper()
	out, err := c.tryCLI(i, stdin, args...)
	if err != nil {
		c.t.Fatalf("node%d: %v", i+1, err)
	}
	return out
}

// tryCLI is cli that returns the failure (with the command's standard error) instead.
func (c *localCluster) tryCLI(i int, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "VAULT_ADDR="+c.addrs[i], "VAULT_TOKEN=")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ledger %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// initUnseal is the README's quick start: `ledger operator init` on node1 (5 key shares,
// threshold 3), then `ledger operator unseal` with three of the keys on every node.
func (c *localCluster) initUnseal() {
	c.t.Helper()
	c.waitHealth("up", func(code int) bool { return code == http.StatusNotImplemented }, c.all()...) // uninitialised
	c.stage("all nodes up, uninitialised")
	out := c.cli(0, "", "operator", "init")
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, fmt.Sprintf("Unseal Key %d: ", len(c.keys)+1)); ok {
			c.keys = append(c.keys, k)
		}
		if r, ok := strings.CutPrefix(line, "Initial Root Token: "); ok {
			c.root = r
		}
	}
	if len(c.keys) != 5 || c.root == "" {
		c.t.Fatalf("operator init printed %d keys and root token %t, want 5 and a token", len(c.keys), c.root != "")
	}
	// Every node learns of the init from the replicated log.
	c.waitHealth("initialised", func(code int) bool { return code == http.StatusServiceUnavailable }, c.all()...)
	c.stage("initialised, every node sealed")
	for i := range c.addrs {
		c.unseal(i)
	}
	c.waitHealth("unsealed", unsealed, c.all()...)
	c.stage("every node unsealed")
}

// unseal enters three of the five keys on node i, each on stdin as a key holder would type it.
func (c *localCluster) unseal(i int) {
	c.t.Helper()
	for _, k := range []int{0, 2, 4} {
		c.cli(i, c.keys[k]+"\n", "operator", "unseal")
	}
}

// active is the index of the node whose sys/health says active (200), or -1.
func (c *localCluster) active(among ...int) int {
	for _, i := range among {
		if c.health(i) == http.StatusOK {
			return i
		}
	}
	return -1
}

// waitActive waits until one of the listed nodes reports active and returns it with the time
// waited.
func (c *localCluster) waitActive(among []int, within time.Duration) (int, time.Duration) {
	c.t.Helper()
	start := time.Now()
	for {
		if i := c.active(among...); i >= 0 {
			return i, time.Since(start)
		}
		if time.Since(start) > within {
			c.t.Fatalf("none of the nodes %v reports active (sys/health 200) within %v", among, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// client is the official Vault client on node i, with the root token.
func (c *localCluster) client(i int) *vault.Client {
	c.t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = c.addrs[i]
	cfg.Timeout = 30 * time.Second
	cfg.MaxRetries = 0
	vc, err := vault.NewClient(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	vc.SetToken(c.root)
	return vc
}

// on is a clone of vc on node i: the clone shares vc's read-your-writes state (the client
// keeps the X-Vault-Index positions it saw in one store that clones share).
func (c *localCluster) on(vc *vault.Client, i int) *vault.Client {
	c.t.Helper()
	cl, err := vc.Clone()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cl.SetAddress(c.addrs[i]); err != nil {
		c.t.Fatal(err)
	}
	cl.SetToken(c.root)
	return cl
}

// TestDeployLocalQuickStart runs the README's three-node quick start with the shipped configs
// (one init, each node unsealed, every node healthy, each data directory relative to where the
// nodes were started), then uses the cluster through the official Vault client: a write sent
// to a standby (forwarded to the active node), reads from both standbys, the active process
// SIGKILLed, a new active node within 15 s, writes on it, the killed node restarted, unsealed
// with the same key, and serving every write, including the one made while it was down.
func TestDeployLocalQuickStart(t *testing.T) {
	c := startLocalCluster(t)
	c.initUnseal()
	for i := 1; i <= 3; i++ {
		if fi, err := os.Stat(filepath.Join(c.dir, "data", fmt.Sprintf("node%d", i))); err != nil || !fi.IsDir() {
			t.Errorf("node%d's data is not under the directory it was started from: %v", i, err)
		}
	}

	act, _ := c.waitActive(c.all(), 60*time.Second)
	var standbys []int
	for i := range 3 {
		if i != act {
			standbys = append(standbys, i)
		}
	}
	// The leader as a standby tells it, by the Vault client's own type.
	sb := c.client(standbys[0])
	sb.SetReadYourWrites(true)
	leader, err := sb.Sys().Leader()
	if err != nil {
		t.Fatal(err)
	}
	if !leader.HAEnabled || leader.IsSelf || leader.LeaderAddress != c.addrs[act] {
		t.Fatalf("sys/leader on node%d: %+v, want the active node%d at %s", standbys[0]+1, leader, act+1, c.addrs[act])
	}

	// Writes through a standby are forwarded to the active node.
	ctx := context.Background()
	if err := sb.Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatalf("mount through the standby node%d: %v", standbys[0]+1, err)
	}
	want := map[string]string{}
	for n := range 3 {
		path, val := fmt.Sprintf("app/before-%d", n), fmt.Sprintf("v%d-%d", n, time.Now().UnixNano())
		if _, err := sb.KVv2("secret").Put(ctx, path, map[string]any{"v": val}); err != nil {
			t.Fatalf("write through the standby node%d: %v", standbys[0]+1, err)
		}
		want[path] = val
	}
	// Each standby serves the reads; read-your-writes makes the second standby wait for the
	// position the first write returned.
	for _, i := range standbys {
		checkSecrets(t, c.on(sb, i), want)
	}
	c.stage("written through a standby, read on both")

	// SIGKILL the active process; one of the others must take over.
	killed := act
	c.kill(killed)
	newAct, took := c.waitActive(standbys, 15*time.Second)
	t.Logf("node%d SIGKILLed; node%d active after %v", killed+1, newAct+1, took.Round(time.Millisecond))

	// The new active node takes writes, and so does the remaining standby (forwarded).
	other := standbys[0] + standbys[1] - newAct
	for n, i := range []int{newAct, other} {
		path, val := fmt.Sprintf("app/after-%d", n), fmt.Sprintf("after%d-%d", n, time.Now().UnixNano())
		vc := c.on(sb, i)
		// The new active node may still be catching up with the stream's new leader: retry a
		// refused write for a while; an accepted one is checked exactly below.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := vc.KVv2("secret").Put(ctx, path, map[string]any{"v": val})
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("write on node%d after the failover: %v", i+1, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		want[path] = val
	}
	checkSecrets(t, c.on(sb, newAct), want)
	c.stage("writes after the failover")

	// Restart the killed node from the same directory: sealed until given the same key, then a
	// standby serving every write, including those made while it was down.
	c.start(killed)
	c.waitHealth("restarted, sealed", func(code int) bool { return code == http.StatusServiceUnavailable }, killed)
	c.unseal(killed)
	c.waitHealth("restarted, unsealed", func(code int) bool { return code == 429 || code == 473 }, killed)
	c.stage("killed node restarted and unsealed")
	back := c.on(sb, killed)
	checkSecrets(t, back, want)
	c.stage("the restarted node serves every write")
	list, err := back.Logical().List("secret/metadata/app")
	if err != nil || list == nil {
		t.Fatalf("list on the restarted node%d: %v", killed+1, err)
	}
	if keys, _ := list.Data["keys"].([]any); len(keys) != len(want) {
		t.Fatalf("list on the restarted node%d: %v, want %d keys", killed+1, list.Data["keys"], len(want))
	}
	c.stage("listed on the restarted node")
}
