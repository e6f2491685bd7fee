package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// FormatVersion is the version of the data directory layout and batch encoding this build
// reads and writes. A directory stamped with another version is refused, never "upgraded" in
// place by accident.
const FormatVersion = 1

const formatFile = "LEDGER_FORMAT"

// checkFormat stamps a new data dir with FormatVersion, and refuses one stamped otherwise.
func checkFormat(dir string) error {
	want := fmt.Sprintf("ledger-format %d\n", FormatVersion)
	return checkStamp(dir, formatFile, want, func(got string) error {
		return fmt.Errorf("data dir %s holds %q but this build reads format %d; run the ledger version that wrote it, or restore a snapshot into an empty dir: %w",
			dir, got, FormatVersion, ErrFormat)
	})
}

// checkStamp writes want to dir/file when the file does not exist yet, and returns mismatch's
// error (given the trimmed content) when it holds something else.
func checkStamp(dir, file, want string, mismatch func(got string) error) error {
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		return writeFileSync(p, []byte(want))
	case err != nil:
		return fmt.Errorf("data dir: %w", err)
	case string(b) != want:
		return mismatch(strings.TrimSpace(string(b)))
	}
	return nil
}

func writeFileSync(p string, b []byte) error {
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// startEmbedded runs an in-process nats-server with JetStream on o.Dir. It listens on no client
// port (clients connect in-process) unless o.Listen is set, joins a JetStream cluster when
// o.Cluster is set, and fsyncs every write: an acknowledged append is on disk.
//
// A clustered server must open a client port (nats-server starts routing only after it has
// one): it takes a random loopback port guarded by a random token that only this process knows,
// returned as token for the in-process connection.
func startEmbedded(o Options) (_ *server.Server, token string, _ error) {
	name := o.NodeName
	if name == "" {
		name = "ledger-embedded"
	}
	opts := &server.Options{
		ServerName:         name,
		JetStream:          true,
		StoreDir:           filepath.Join(o.Dir, "jetstream"),
		SyncAlways:         true,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         maxMessageBytes,
		JetStreamMaxMemory: 64 << 20,
	}
	switch {
	case o.Listen != "":
		host, port, err := splitHostPort(o.Listen)
		if err != nil {
			return nil, "", err
		}
		opts.Host, opts.Port = host, port
	case o.Cluster != nil:
		token = newID()
		opts.Host, opts.Port, opts.Authorization = "127.0.0.1", server.RANDOM_PORT, token
	default:
		opts.DontListen = true
	}
	if err := clusterOptions(opts, o.Cluster); err != nil {
		return nil, "", err
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, "", fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, "", fmt.Errorf("embedded nats: not ready after 30s (data dir %s)", o.Dir)
	}
	return ns, token, nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("nats listen address %q: want host:port", addr)
	}
	var port int
	if _, err := fmt.Sscanf(addr[i+1:], "%d", &port); err != nil {
		return "", 0, fmt.Errorf("nats listen address %q: bad port", addr)
	}
	return addr[:i], port, nil
}
