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
	p := filepath.Join(dir, formatFile)
	want := fmt.Sprintf("ledger-format %d\n", FormatVersion)
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
		return fmt.Errorf("data dir %s holds %q but this build reads format %d; run the ledger version that wrote it, or restore a snapshot into an empty dir: %w",
			dir, strings.TrimSpace(string(b)), FormatVersion, ErrFormat)
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

// startEmbedded runs an in-process nats-server with JetStream on dir. It listens on no port
// (clients connect in-process) unless listen is set, and fsyncs every write: an acknowledged
// append is on disk.
func startEmbedded(dir, listen string) (*server.Server, error) {
	opts := &server.Options{
		ServerName:         "ledger-embedded",
		JetStream:          true,
		StoreDir:           filepath.Join(dir, "jetstream"),
		SyncAlways:         true,
		NoSigs:             true,
		NoLog:              true,
		MaxPayload:         maxMessageBytes,
		JetStreamMaxMemory: 64 << 20,
	}
	if listen == "" {
		opts.DontListen = true
	} else {
		host, port, err := splitHostPort(listen)
		if err != nil {
			return nil, err
		}
		opts.Host, opts.Port = host, port
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats: not ready after 30s (data dir %s)", dir)
	}
	return ns, nil
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
