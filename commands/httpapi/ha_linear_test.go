package httpapi_test

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	vault "github.com/hashicorp/vault/api"
)

// haBoot starts the three-node cluster of startHACluster, initialises it through a standby
// (one key share), unseals every node, mounts KV v2 at secret/ and returns the root token.
func haBoot(t *testing.T) ([]*haTestNode, string) {
	t.Helper()
	nodes := startHACluster(t)
	init := initHACluster(t, nodes)
	haWaitActive(t, nodes, -1)
	haPoll(t, "mount secret/", 30*time.Second, func() error {
		err := haClient(t, nodes[0].url, init.RootToken).Sys().Mount("secret", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}})
		if err != nil && strings.Contains(err.Error(), "path is already in use") {
			return nil
		}
		return err
	})
	return nodes, init.RootToken
}

// haPoll retries f every 100 ms until it succeeds or d has passed, then fails the test.
func haPoll(t *testing.T, what string, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// haWaitActive waits (generously: the machine is loaded) for an active node other than skip.
func haWaitActive(t *testing.T, nodes []*haTestNode, skip int) int {
	t.Helper()
	var act int
	haPoll(t, "an active node", 60*time.Second, func() error {
		if act = activeIndex(nodes, skip); act < 0 {
			return errors.New("none")
		}
		return nil
	})
	return act
}

// The model: one KV v2 secret per key is a register holding (version, value). A write is a
// check-and-set: it succeeds only when the current version equals cas, making version cas+1
// hold its value; a read returns the current (version, value), (0, "") before the first write.
//
// Outcomes: "ok" and "casfail" (400, check-and-set mismatch) are definite. Anything else —
// timeout, connection refused, 500 during the election, a 307 to a dead node — is "unknown":
// the write may or may not have taken effect, so its return time is put past the end of the
// history (porcupine may linearize it anywhere after its call, including "never", which is
// the same as "last"). Reads that fail are dropped: they observed nothing.
//
// Reads on standbys: a performance standby answers from its own view, which may lag, so a read
// without an index is not linearizable. Each read here presents the highest X-Vault-Index any
// client had received before the read was invoked (clients share it, as a Vault client shares
// its replication state); a completed operation's index is published before its return time
// is taken. The standby then answers only once it has applied that position (or forwards), so
// every operation that completed before the read began is visible to it. That is the claim
// under test, with the active node (which ignores the index) and the failovers included.
type linInput struct {
	key   int
	write bool
	cas   int
	val   string
}

type linOutput struct {
	kind string // ok, casfail, unknown
	ver  int
	val  string
}

type linState struct {
	ver int
	val string
}

var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		var keys []int
		for _, op := range h {
			k := op.Input.(linInput).key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return linState{} },
	Step: func(s, in, out any) (bool, any) {
		st, i, o := s.(linState), in.(linInput), out.(linOutput)
		if !i.write {
			return o.kind == "unknown" || (st.ver == o.ver && st.val == o.val), st
		}
		switch o.kind {
		case "ok":
			if st.ver == i.cas && o.ver == i.cas+1 {
				return true, linState{ver: o.ver, val: i.val}
			}
			return false, st
		case "casfail":
			return st.ver != i.cas, st
		default:
			if st.ver == i.cas {
				return true, linState{ver: i.cas + 1, val: i.val}
			}
			return true, st
		}
	},
	DescribeOperation: func(in, out any) string {
		i, o := in.(linInput), out.(linOutput)
		if !i.write {
			return fmt.Sprintf("get(k%d) -> v%d %q", i.key, o.ver, o.val)
		}
		return fmt.Sprintf("cas(k%d, %d, %q) -> %s v%d", i.key, i.cas, i.val, o.kind, o.ver)
	},
	DescribeOperationMetadata: func(m any) string {
		s, _ := m.(string)
		return s
	},
	DescribeState: func(s any) string {
		st := s.(linState)
		return fmt.Sprintf("v%d %q", st.ver, st.val)
	},
}

// linIndex is the highest X-Vault-Index seen by any client.
type linIndex struct {
	mu  sync.Mutex
	seq uint64
	hdr string
}

func (x *linIndex) get() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.hdr
}

func (x *linIndex) see(h string) {
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil {
		return
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 5 {
		return
	}
	seq, err := strconv.ParseUint(parts[2], 10, 64)
	if err != nil {
		return
	}
	x.mu.Lock()
	if seq > x.seq {
		x.seq, x.hdr = seq, h
	}
	x.mu.Unlock()
}

// linDo runs one operation against url and classifies its outcome.
func linDo(ctx context.Context, c *vault.Client, idx *linIndex, in linInput) (linOutput, error) {
	path := fmt.Sprintf("/v1/secret/data/k%d", in.key)
	var req *vault.Request
	if in.write {
		req = c.NewRequest(http.MethodPost, path)
		if err := req.SetJSONBody(map[string]any{"options": map[string]any{"cas": in.cas}, "data": map[string]any{"v": in.val}}); err != nil {
			return linOutput{}, err
		}
	} else {
		req = c.NewRequest(http.MethodGet, path)
		if h := idx.get(); h != "" {
			req.Headers.Set("X-Vault-Index", h)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := c.RawRequestWithContext(ctx, req)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil && in.write && resp.StatusCode == http.StatusBadRequest && strings.Contains(err.Error(), "check-and-set parameter did not match") {
			if h := resp.Header.Get("X-Vault-Index"); h != "" {
				idx.see(h)
			}
			return linOutput{kind: "casfail"}, nil
		}
		if resp != nil && !in.write && resp.StatusCode == http.StatusNotFound && !strings.Contains(err.Error(), "no handler for route") {
			// KV v2's "no such secret" (an empty error list), not a routing failure: a mount
			// that exists and could not be found is a defect the test reports, never version 0.
			idx.see(resp.Header.Get("X-Vault-Index"))
			return linOutput{kind: "ok"}, nil
		}
		return linOutput{kind: "unknown"}, err
	}
	var body struct {
		Data struct {
			Version  int `json:"version"`
			Metadata struct {
				Version int `json:"version"`
			} `json:"metadata"`
			Data map[string]any `json:"data"`
		} `json:"data"`
	}
	if err := resp.DecodeJSON(&body); err != nil {
		return linOutput{kind: "unknown"}, err
	}
	idx.see(resp.Header.Get("X-Vault-Index"))
	if in.write {
		return linOutput{kind: "ok", ver: body.Data.Version}, nil
	}
	v, _ := body.Data.Data["v"].(string)
	return linOutput{kind: "ok", ver: body.Data.Metadata.Version, val: v}, nil
}

// TestHALinearizableKVAcrossFailover records concurrent check-and-set writes and reads of a
// few KV v2 secrets, through all three nodes (standbys forward the writes and answer the
// reads), while the active node steps down and then, later, the active node is killed; and
// checks the history with porcupine.
func TestHALinearizableKVAcrossFailover(t *testing.T) {
	nodes, root := haBoot(t)
	const keys, clients = 4, 6
	var (
		idx     linIndex
		alive   [3]atomic.Bool
		stop    atomic.Bool
		mu      sync.Mutex
		history []porcupine.Operation
		start   = time.Now()
		errs    = map[string]int{}
		// killedAt is when the active node was killed (0 before); afterKill counts the
		// definite outcomes of operations called after it.
		killedAt, afterKill atomic.Int64
	)
	for i := range alive {
		alive[i].Store(true)
	}
	// The history begins after the mount of secret/: the clients start out with a position
	// that holds it (a standby that has not applied it yet waits, or forwards).
	haPoll(t, "a position that holds the mount", 30*time.Second, func() error {
		act := activeIndex(nodes, -1)
		if act < 0 {
			return errors.New("no active node")
		}
		_, err := linDo(context.Background(), haClient(t, nodes[act].url, root), &idx, linInput{key: 0})
		if err == nil && idx.get() == "" {
			err = errors.New("no X-Vault-Index in the answer")
		}
		return err
	})
	now := func() int64 { return int64(time.Since(start)) }
	var wg sync.WaitGroup
	for cl := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cl), 42))
			known := make([]int, keys) // the version this client last saw, per key
			seq := 0
			for !stop.Load() {
				home := cl % 3
				for !alive[home].Load() {
					home = (home + 1) % 3
				}
				c := haClient(t, nodes[home].url, root)
				in := linInput{key: rng.IntN(keys)}
				if rng.IntN(2) == 0 {
					seq++
					in.write, in.cas, in.val = true, known[in.key], fmt.Sprintf("c%d-%d", cl, seq)
					if rng.IntN(5) == 0 && in.cas > 0 {
						in.cas-- // a stale cas: a definite failure unless the register is behind
					}
				}
				call := now()
				out, err := linDo(context.Background(), c, &idx, in)
				ret := now()
				if out.kind == "unknown" {
					mu.Lock()
					errs[fmt.Sprintf("node%d %v", home+1, shortErr(err))]++
					mu.Unlock()
					if !in.write {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					ret = -1 // set past the end below
				} else {
					if out.kind == "ok" {
						known[in.key] = out.ver
					}
					if k := killedAt.Load(); k > 0 && call > k {
						afterKill.Add(1)
					}
				}
				meta := fmt.Sprintf("node%d", home+1)
				if err != nil {
					meta += " " + shortErr(err)
				}
				mu.Lock()
				history = append(history, porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret, Metadata: meta})
				mu.Unlock()
				if out.kind == "unknown" {
					// Each unknown write stays pending to the end of the history, and porcupine's
					// search grows with their number: back off while the cluster has no leader.
					time.Sleep(time.Second)
				}
			}
		})
	}

	// The faults, each in the middle of traffic.
	time.Sleep(3 * time.Second)
	act := haWaitActive(t, nodes, -1)
	t.Logf("%.1fs: node%d steps down", time.Since(start).Seconds(), act+1)
	if err := haClient(t, nodes[act].url, root).Sys().StepDown(); err != nil {
		t.Errorf("step-down on node%d: %v", act+1, err)
	}
	time.Sleep(4 * time.Second)
	act = haWaitActive(t, nodes, -1)
	t.Logf("%.1fs: node%d is active; killing it", time.Since(start).Seconds(), act+1)
	alive[act].Store(false)
	nodes[act].stop()
	killedAt.Store(now())
	next := haWaitActive(t, nodes, act)
	t.Logf("%.1fs: node%d is active", time.Since(start).Seconds(), next+1)
	// Traffic goes on until 60 operations called after the kill have a definite outcome.
	for deadline := time.Now().Add(90 * time.Second); afterKill.Load() < 60 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()

	end := now()
	counts := map[string]int{}
	for i := range history {
		in, out := history[i].Input.(linInput), history[i].Output.(linOutput)
		kind := "read"
		if in.write {
			kind = "write " + out.kind
		}
		counts[kind]++
		if history[i].Return < 0 {
			history[i].Return = end + int64(time.Hour)
		}
	}
	t.Logf("history: %d operations %v; %d definite after the kill; failures: %v", len(history), counts, afterKill.Load(), errs)
	for e, n := range errs {
		if strings.Contains(e, "no handler for route") {
			t.Errorf("%d requests answered as if secret/ were not mounted: %s", n, e)
		}
	}
	if counts["read"] == 0 || counts["write ok"] == 0 || afterKill.Load() < 60 {
		t.Fatalf("the history does not exercise the cluster: %v, %d definite after the kill", counts, afterKill.Load())
	}
	history, dropped := linPrune(history)
	t.Logf("%d unknown writes dropped: another write made the version they would have made", dropped)
	linCheck(t, history, true)

	// Afterwards every key reads the same on every node still up, as the last check of the
	// history: nothing acknowledged is lost or unreadable.
	for k := range keys {
		var want linOutput
		for i, n := range nodes {
			if !alive[i].Load() {
				continue
			}
			var got linOutput
			haPoll(t, fmt.Sprintf("read k%d on node%d", k, i+1), 30*time.Second, func() error {
				var err error
				got, err = linDo(context.Background(), haClient(t, n.url, root), &idx, linInput{key: k})
				return err
			})
			if want.kind == "" {
				want = got
			} else if got != want {
				t.Errorf("k%d: node%d reads %+v, another node %+v", k, i+1, got, want)
			}
		}
		t.Logf("k%d ends at version %d", k, want.ver)
	}

	// The check can fail: the same history with one stale read appended (after everything
	// completed, it reads a key's state before its latest acknowledged write) is rejected.
	// Values by version, from acknowledged writes and from reads (which reveal unknown writes).
	seen := map[[2]int]string{}
	top := map[int]int{}
	for _, op := range history {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		if out.kind != "ok" {
			continue
		}
		v := out.val
		if in.write {
			v = in.val
		}
		seen[[2]int{in.key, out.ver}] = v
		top[in.key] = max(top[in.key], out.ver)
	}
	key := -1
	for k := range keys {
		if _, ok := seen[[2]int{k, top[k] - 1}]; top[k] > 0 && (ok || top[k] == 1) {
			key = k
		}
	}
	if key < 0 {
		t.Fatalf("no key with two known versions to make a stale read of: %v", top)
	}
	stale := append([]porcupine.Operation(nil), history...)
	stale = append(stale, porcupine.Operation{ClientId: clients, Input: linInput{key: key}, Call: end + 2*int64(time.Hour),
		Output: linOutput{kind: "ok", ver: top[key] - 1, val: seen[[2]int{key, top[key] - 1}]}, Return: end + 3*int64(time.Hour)})
	linCheck(t, stale, false)
}

// linPrune drops the unknown writes that provably did not take effect, so that porcupine does
// not have to try every subset of them. Each version of a key is made by exactly one write: an
// unknown write with cas c would have made version c+1 holding its value. If an acknowledged
// write made c+1, or a read saw c+1 holding another value, the unknown write failed its cas,
// and a failed cas changes nothing — it is the same as linearizing it past the end, where the
// version is at least c+1. So the history is linearizable with it if and only if without it.
func linPrune(h []porcupine.Operation) ([]porcupine.Operation, int) {
	made := map[[2]int]string{} // (key, version) -> value, from definite outcomes
	for _, op := range h {
		in, out := op.Input.(linInput), op.Output.(linOutput)
		switch {
		case out.kind != "ok" || out.ver == 0:
		case in.write:
			made[[2]int{in.key, out.ver}] = in.val
		default:
			made[[2]int{in.key, out.ver}] = out.val
		}
	}
	out := h[:0:0]
	for _, op := range h {
		in, o := op.Input.(linInput), op.Output.(linOutput)
		if v, ok := made[[2]int{in.key, in.cas + 1}]; in.write && o.kind == "unknown" && ok && v != in.val {
			continue
		}
		out = append(out, op)
	}
	return out, len(h) - len(out)
}

func shortErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	s := err.Error()
	switch {
	case strings.Contains(s, "connection refused"):
		return "connection refused"
	case strings.Contains(s, "active cluster node not found"):
		return "no active node"
	case strings.Contains(s, "deadline exceeded"), strings.Contains(s, "Timeout"):
		return "timeout"
	}
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// linCheck runs porcupine; want is whether the history must be linearizable. A failing
// history is saved as porcupine's visualization in the test's temp dir.
func linCheck(t *testing.T, h []porcupine.Operation, want bool) {
	t.Helper()
	began := time.Now()
	res, info := porcupine.CheckOperationsVerbose(linModel, h, 2*time.Minute)
	t.Logf("porcupine on %d operations: %s in %s (want linearizable: %v)", len(h), res, time.Since(began).Round(time.Millisecond), want)
	switch {
	case res == porcupine.Unknown:
		t.Fatalf("porcupine could not decide within its timeout")
	case (res == porcupine.Ok) != want:
		path := filepath.Join(t.TempDir(), "linearizability.html")
		if err := porcupine.VisualizePath(linModel, info, path); err != nil {
			t.Logf("visualization: %v", err)
		}
		t.Errorf("porcupine: %s, want linearizable=%v; visualization: %s", res, want, path)
		if want {
			linLogIllegal(t, h)
		}
		if dir := os.Getenv("LEDGER_TEST_LIN_DUMP"); dir != "" {
			var b strings.Builder
			for _, op := range h {
				fmt.Fprintf(&b, "%d\t%d\t%d\t%s\t%v\n", op.ClientId, op.Call/1e6, op.Return/1e6, linModel.DescribeOperation(op.Input, op.Output), op.Metadata)
			}
			os.WriteFile(filepath.Join(dir, "history.tsv"), []byte(b.String()), 0o600)
			porcupine.VisualizePath(linModel, info, filepath.Join(dir, "linearizability.html"))
		}
	}
}

// linLogIllegal logs, for each key whose own history is not linearizable, its operations in
// call order (times in ms from the start; a return past the end is an unknown outcome), so
// that a failure in CI can be read from the test's log alone.
func linLogIllegal(t *testing.T, h []porcupine.Operation) {
	t.Helper()
	for _, part := range linModel.Partition(h) {
		if porcupine.CheckOperations(linModel, part) {
			continue
		}
		ops := slices.Clone(part)
		slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
		var b strings.Builder
		for _, op := range ops {
			fmt.Fprintf(&b, "\n  client %d  %6d..%-6d ms  %s  [%v]", op.ClientId, op.Call/1e6, op.Return/1e6,
				linModel.DescribeOperation(op.Input, op.Output), op.Metadata)
		}
		t.Logf("k%d is not linearizable on its own; its %d operations:%s", ops[0].Input.(linInput).key, len(ops), b.String())
	}
}

// linPruned prunes h and panics unless want operations are left.
func linPruned(h []porcupine.Operation, want int) []porcupine.Operation {
	out, _ := linPrune(h)
	if len(out) != want {
		panic(fmt.Sprintf("linPrune left %d of %d operations, want %d", len(out), len(h), want))
	}
	return out
}

// TestHALinearizableModelRejectsStaleRead: the model itself tells a stale read, a lost write
// and a cas that ignored the version from linearizable histories.
func TestHALinearizableModelRejectsStaleRead(t *testing.T) {
	op := func(cl int, in linInput, call, ret int64, out linOutput) porcupine.Operation {
		return porcupine.Operation{ClientId: cl, Input: in, Call: call, Output: out, Return: ret}
	}
	w1 := op(0, linInput{key: 1, write: true, cas: 0, val: "a"}, 0, 10, linOutput{kind: "ok", ver: 1})
	for _, c := range []struct {
		name string
		h    []porcupine.Operation
		want bool
	}{
		{"read after write", []porcupine.Operation{w1, op(1, linInput{key: 1}, 20, 30, linOutput{kind: "ok", ver: 1, val: "a"})}, true},
		{"stale read after write", []porcupine.Operation{w1, op(1, linInput{key: 1}, 20, 30, linOutput{kind: "ok"})}, false},
		{"concurrent read may miss", []porcupine.Operation{w1, op(1, linInput{key: 1}, 5, 30, linOutput{kind: "ok"})}, true},
		{"unknown write may apply", []porcupine.Operation{op(0, linInput{key: 1, write: true, val: "u"}, 0, 1<<60, linOutput{kind: "unknown"}),
			op(1, linInput{key: 1}, 20, 30, linOutput{kind: "ok", ver: 1, val: "u"})}, true},
		{"unknown write may not apply", []porcupine.Operation{op(0, linInput{key: 1, write: true, val: "u"}, 0, 1<<60, linOutput{kind: "unknown"}),
			op(1, linInput{key: 1}, 20, 30, linOutput{kind: "ok"})}, true},
		{"pruned: another write made the version", linPruned([]porcupine.Operation{w1, op(1, linInput{key: 1, write: true, cas: 0, val: "u"}, 0, 1<<60, linOutput{kind: "unknown"}),
			op(2, linInput{key: 1}, 20, 30, linOutput{kind: "ok", ver: 1, val: "a"})}, 2), true},
		{"kept: the read saw its value", linPruned([]porcupine.Operation{op(1, linInput{key: 1, write: true, cas: 0, val: "u"}, 0, 1<<60, linOutput{kind: "unknown"}),
			op(2, linInput{key: 1}, 20, 30, linOutput{kind: "ok", ver: 1, val: "u"})}, 2), true},
		{"cas fail on a matching version", []porcupine.Operation{w1, op(1, linInput{key: 1, write: true, cas: 1, val: "b"}, 20, 30, linOutput{kind: "casfail"})}, false},
		{"two writes won one cas", []porcupine.Operation{w1, op(1, linInput{key: 1, write: true, cas: 0, val: "b"}, 0, 10, linOutput{kind: "ok", ver: 1})}, false},
		{"read goes back", []porcupine.Operation{w1, op(1, linInput{key: 1, write: true, cas: 1, val: "b"}, 20, 30, linOutput{kind: "ok", ver: 2}),
			op(2, linInput{key: 1}, 40, 50, linOutput{kind: "ok", ver: 2, val: "b"}), op(2, linInput{key: 1}, 60, 70, linOutput{kind: "ok", ver: 1, val: "a"})}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := porcupine.CheckOperations(linModel, c.h); got != c.want {
				t.Errorf("linearizable = %v, want %v", got, c.want)
			}
		})
	}
}
