package ledger

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// freePorts reserves n loopback ports and releases them for the servers to take.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// clusterOptions3 returns the options of a three-member embedded cluster on loopback.
func clusterOptions3(t testing.TB, dir string) []Options {
	ports := freePorts(t, 3)
	var routes []string
	for _, p := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", p))
	}
	var out []Options
	for i, p := range ports {
		out = append(out, Options{
			Dir: filepath.Join(dir, fmt.Sprintf("n%d", i+1)), Replicas: 3, NodeName: fmt.Sprintf("n%d", i+1),
			Cluster: &ClusterOptions{Name: "test", Listen: fmt.Sprintf("127.0.0.1:%d", p), Routes: routes},
		})
	}
	return out
}

// openCluster3 opens three logs that form one JetStream cluster with an R3 stream.
func openCluster3(t testing.TB) []*Log {
	t.Helper()
	opts := clusterOptions3(t, t.TempDir())
	logs := make([]*Log, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range opts {
		wg.Go(func() {
			logs[i], errs[i] = Open(context.Background(), opts[i])
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open n%d: %v", i+1, err)
		}
		t.Cleanup(func() { logs[i].Close() })
	}
	return logs
}

func TestClusterR3Append(t *testing.T) {
	logs := openCluster3(t)
	k := testKeyring(t)
	for _, l := range logs {
		l.SetKeyring(k)
	}
	info, err := logs[0].stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream replicas = %d, cluster %+v", info.Config.Replicas, info.Cluster)
	}
	if _, err := logs[0].Append(context.Background(), []Event{{Type: "test.written.v1", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	// Every member serves the batch from its own replica.
	for i, l := range logs {
		deadline := time.Now().Add(10 * time.Second)
		for len(readAll(t, l, k)) != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("n%d never saw the batch", i+1)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if peers := l.ClusterPeers(); len(peers) != 3 {
			t.Errorf("n%d sees peers %v", i+1, peers)
		}
	}
}

func TestClusterTooFewPeersRefused(t *testing.T) {
	o := clusterOptions3(t, t.TempDir())[0]
	o.FormTimeout = 2 * time.Second
	_, err := Open(context.Background(), o)
	if err == nil {
		t.Fatal("a lone member opened an R3 stream")
	}
	for _, w := range []string{"3 replicas need 3 JetStream servers", "this node sees 1 of them (n1)", "start the other nodes"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
}

func TestClusterDataDirOfAnotherCluster(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	l.Close()
	o := clusterOptions3(t, t.TempDir())[0]
	o.Dir = dir
	_, err := Open(context.Background(), o)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `belongs to "standalone" but this node is configured as "cluster test"`) {
		t.Fatalf("err = %v", err)
	}
}

// TestClusterStreamAsyncPersistReplicated: the audit stream asks for async persistence, which
// JetStream refuses on an R3 stream ("async persist mode is not supported on replicated
// streams"); it used to fail every unseal of a three-node cluster. On R3 the stream is opened
// with the default persistence and appends are acknowledged by the quorum.
func TestClusterStreamAsyncPersistReplicated(t *testing.T) {
	logs := openCluster3(t)
	k := testKeyring(t)
	s, err := OpenStream(context.Background(), logs[0].JetStream(), StreamConfig{Name: "TEST_AUDIT_R3", Subject: "test_audit_r3.batch",
		MaxAge: time.Hour, Replicas: 3, AsyncPersist: true}, func() *Keyring { return k })
	if err != nil {
		t.Fatalf("open an R3 stream with AsyncPersist: %v", err)
	}
	defer s.Close()
	if _, err := s.Append(context.Background(), []Event{{Type: "test.read.v1", Payload: []byte("r")}}); err != nil {
		t.Fatal(err)
	}
	info, err := s.stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Config.PersistMode == jetstream.AsyncPersistMode || info.State.Msgs != 1 {
		t.Errorf("stream: replicas %d, persist mode %v, %d messages", info.Config.Replicas, info.Config.PersistMode, info.State.Msgs)
	}
}

// TestRetryJSAsksAgainAfterADroppedRequest: a clustered JetStream drops a request for a stream
// whose leader was killed (no answer, no error) until a successor is elected. RetryJS must ask
// again after jsAttempt rather than wait out the caller's context, and must not retry an answer
// that is a refusal.
func TestRetryJSAsksAgainAfterADroppedRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	attempts := 0
	began := time.Now()
	err := RetryJS(ctx, nil, "test", time.Minute, func(actx context.Context) error {
		attempts++
		dl, ok := actx.Deadline()
		if want := jsAttempt + time.Duration(attempts-1)*time.Second; !ok || time.Until(dl) > want {
			t.Errorf("attempt %d: deadline %v away, want at most %v", attempts, time.Until(dl), want)
		}
		if attempts < 3 {
			<-actx.Done() // dropped: nothing comes back
			return actx.Err()
		}
		return nil
	})
	if err != nil || attempts != 3 {
		t.Fatalf("RetryJS = %v after %d attempts, want nil after 3", err, attempts)
	}
	if d := time.Since(began); d > 2*jsAttempt+2*time.Second {
		t.Fatalf("took %v for two dropped requests, want about %v", d, 2*jsAttempt+time.Second)
	}

	refused := &jetstream.APIError{ErrorCode: jetstream.JSErrCodeMessageNotFound, Code: 404, Description: "no message found"}
	attempts = 0
	err = RetryJS(ctx, nil, "test", time.Minute, func(context.Context) error { attempts++; return refused })
	if !errors.Is(err, refused) || attempts != 1 {
		t.Fatalf("a refusal: RetryJS = %v after %d attempts, want it returned after 1", err, attempts)
	}

	// Past within, the last transient error is returned.
	attempts = 0
	err = RetryJS(ctx, nil, "test", 300*time.Millisecond, func(context.Context) error {
		attempts++
		return fmt.Errorf("nats: no responders available for request")
	})
	if err == nil || attempts < 2 {
		t.Fatalf("always unavailable: RetryJS = %v after %d attempts, want an error after several", err, attempts)
	}
}
