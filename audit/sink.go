package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// sink is where a device writes its lines. Write writes lines in order and makes them as
// durable as the sink can (a file is fsynced) before it returns; it reports how many leading
// lines were written, and the device retries the rest. A sink never splits a line.
type sink interface {
	Write(ctx context.Context, lines [][]byte) (int, error)
	// Reopen makes the next Write reopen the file or connection (log rotation, SIGHUP).
	Reopen()
	Close() error
}

// resumer is a sink that can say what it already holds: the last line of each stream, so a
// device restarted after a crash between the write and the acknowledgement skips those lines.
type resumer interface {
	Resume() (map[string]written, error)
}

// written is the position of the last line a device wrote for one stream.
type written struct {
	Pos  Position
	Part int
}

func newSink(d Device, s Settings, own *nats.Conn) (sink, error) {
	switch d.Type {
	case "nats":
		return &natsSink{s: s, own: own}, nil
	case "rabbitmq":
		return &amqpSink{s: s}, nil
	case "mqtt":
		return &mqttSink{s: s}, nil
	case "file":
		return &fileSink{path: s.FilePath, mode: s.FileMode, prefix: s.Prefix}, nil
	case "syslog":
		return newSyslogSink(s)
	case "socket":
		return &socketSink{network: s.SocketType, address: s.Address, timeout: s.WriteTimeout}, nil
	case "http":
		return newHTTPSink(s), nil
	}
	return nil, invalid("unknown audit device type %q", d.Type)
}

// Probe checks, at enable time, that a device can write where it is told to: the file can be
// opened for appending, the socket or syslog daemon accepts a connection, the SIEM's host
// answers. It writes nothing. Errors wrap ErrInvalidDevice.
func Probe(ctx context.Context, typ string, s Settings) error {
	switch typ {
	case "file":
		switch s.FilePath {
		case "stdout", "discard":
			return nil
		}
		if fi, err := os.Stat(s.FilePath); err == nil && fi.IsDir() {
			return invalid("file_path %q is a directory, not a file", s.FilePath)
		}
		f, err := openAppend(s.FilePath, s.FileMode)
		if err != nil {
			return invalid("file_path %q cannot be opened for appending: %s", s.FilePath, describe(err))
		}
		return f.Close()
	case "syslog":
		w, err := dialSyslog(s)
		if err != nil {
			return invalid("syslog is not reachable: %s", describe(err))
		}
		return w.Close()
	case "socket":
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, s.SocketType, s.Address)
		if err != nil {
			return invalid("socket %s %s is not reachable: %s", s.SocketType, s.Address, describe(err))
		}
		return conn.Close()
	case "nats":
		if s.NATSURL == "" {
			return nil // the node's own server
		}
		if err := probeTCP(ctx, s.NATSURL, "4222"); err != nil {
			return invalid("nats url: %s", err.Error())
		}
		return nil
	case "rabbitmq":
		if err := probeTCP(ctx, s.URL, map[bool]string{true: "5671", false: "5672"}[schemeIn(s.URL, "amqps")]); err != nil {
			return invalid("rabbitmq url: %s", err.Error())
		}
		return nil
	case "mqtt":
		if err := probeTCP(ctx, s.Broker, "1883"); err != nil {
			return invalid("mqtt broker: %s", err.Error())
		}
		return nil
	case "http":
		host, err := httpHostPort(s.URL)
		if err != nil {
			return invalid("url %q: %s", s.URL, err.Error())
		}
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", host)
		if err != nil {
			return invalid("url %q is not reachable: %s", s.URL, describe(err))
		}
		return conn.Close()
	}
	return invalid("unknown audit device type %q", typ)
}

// describe renders an OS or network error without Go's operation prefixes.
func describe(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return err.Error()
}

func openAppend(path string, mode os.FileMode) (*os.File, error) {
	perm := mode
	if perm == 0 {
		perm = 0o600
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, perm)
	if err != nil {
		return nil, err
	}
	if mode != 0 {
		if err := f.Chmod(mode); err != nil {
			f.Close()
			return nil, err
		}
	}
	return f, nil
}

// fileSink appends JSON lines to a file, fsyncing each write. Before each write it checks that
// the path still names the file it holds open: a file rotated away, a directory moved or
// replaced, is noticed at once — the sink reopens the path, or fails until it can — so records
// never go to a file nobody will read.
type fileSink struct {
	path   string
	mode   os.FileMode
	prefix string

	mu     sync.Mutex
	f      *os.File
	fi     os.FileInfo
	reopen bool
}

func (s *fileSink) Write(_ context.Context, lines [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.path {
	case "discard":
		return len(lines), nil
	case "stdout":
		if _, err := os.Stdout.Write(joinLines(lines)); err != nil {
			return 0, err
		}
		return len(lines), nil
	}
	if s.f != nil {
		fi, err := os.Stat(s.path)
		if s.reopen || err != nil || !os.SameFile(fi, s.fi) {
			s.f.Close()
			s.f = nil
		}
	}
	if s.f == nil {
		f, err := openAppend(s.path, s.mode)
		if err != nil {
			return 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return 0, err
		}
		s.f, s.fi, s.reopen = f, fi, false
	}
	fi, err := s.f.Stat()
	if err != nil {
		s.closeLocked()
		return 0, err
	}
	before := fi.Size()
	if _, err := s.f.Write(joinLines(lines)); err != nil {
		// Take back a partial write so the file holds whole lines only, and retry it all.
		s.f.Truncate(before)
		s.closeLocked()
		return 0, err
	}
	if err := s.f.Sync(); err != nil {
		s.f.Truncate(before)
		s.closeLocked()
		return 0, err
	}
	return len(lines), nil
}

func (s *fileSink) closeLocked() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
}

func (s *fileSink) Reopen() {
	s.mu.Lock()
	s.reopen = true
	s.mu.Unlock()
}

func (s *fileSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeLocked()
	return nil
}

// resumeWindow is how much of a file's tail Resume reads: far more than the lines of the
// batches a device can have written but not acknowledged.
const resumeWindow = 64 << 20

// Resume reads the tail of the file for the last line of each stream, and cuts a partial last
// line (a write torn by a crash) so the file holds whole lines only.
func (s *fileSink) Resume() (map[string]written, error) {
	if s.path == "stdout" || s.path == "discard" {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := os.OpenFile(s.path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	start := max(fi.Size()-resumeWindow, 0)
	buf := make([]byte, fi.Size()-start)
	if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if i := bytes.LastIndexByte(buf, '\n'); i < len(buf)-1 {
		if err := f.Truncate(start + int64(i+1)); err != nil {
			return nil, err
		}
		buf = buf[:i+1]
	}
	if start > 0 {
		// The window may begin mid-line.
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	out := map[string]written{}
	sc := bufio.NewScanner(bytes.NewReader(buf))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := bytes.TrimPrefix(sc.Bytes(), []byte(s.prefix))
		pos, part, ok := linePosition(line)
		if !ok {
			continue
		}
		if w, ok := out[pos.Stream]; !ok || after(pos, part, w.Pos, w.Part) {
			out[pos.Stream] = written{Pos: pos, Part: part}
		}
	}
	return out, sc.Err()
}

// linePosition reads the record position a line carries, in any output format: "ledger" in
// Vault's JSON and ECS (with "type" telling request from response), "unmapped.ledger" in
// OCSF, the cs1 extension in CEF. The SIEM formats write one line per record (part 0).
func linePosition(line []byte) (Position, int, bool) {
	if bytes.HasPrefix(line, []byte("CEF:")) {
		m := cefPosRE.FindSubmatch(line)
		if m == nil {
			return Position{}, 0, false
		}
		seq, err1 := strconv.ParseUint(string(m[2]), 10, 64)
		idx, err2 := strconv.ParseUint(string(m[3]), 10, 32)
		if err1 != nil || err2 != nil {
			return Position{}, 0, false
		}
		return Position{Stream: string(m[1]), Seq: seq, Index: uint32(idx)}, 0, true
	}
	var e struct {
		Type     string    `json:"type"`
		Ledger   *Position `json:"ledger"`
		Unmapped *struct {
			Ledger *Position `json:"ledger"`
		} `json:"unmapped"`
	}
	if json.Unmarshal(line, &e) != nil {
		return Position{}, 0, false
	}
	if e.Ledger == nil && e.Unmapped != nil {
		e.Ledger = e.Unmapped.Ledger
	}
	if e.Ledger == nil {
		return Position{}, 0, false
	}
	return *e.Ledger, Entry{Type: e.Type}.Part(), true
}

var cefPosRE = regexp.MustCompile(`(?:^|\s)cs1=([A-Za-z0-9_]+):(\d+)\.(\d+)(?:\s|$)`)

func joinLines(lines [][]byte) []byte {
	n := 0
	for _, l := range lines {
		n += len(l) + 1
	}
	b := make([]byte, 0, n)
	for _, l := range lines {
		b = append(b, l...)
		b = append(b, '\n')
	}
	return b
}

// socketSink writes JSON lines to a TCP, UDP or Unix socket, redialling after a failure. A
// socket cannot confirm what its peer received, so delivery is at least once; each line carries
// its position ("ledger") for the receiver to deduplicate.
type socketSink struct {
	network, address string
	timeout          time.Duration

	mu   sync.Mutex
	conn net.Conn
}

func (s *socketSink) Write(ctx context.Context, lines [][]byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, s.network, s.address)
		if err != nil {
			return 0, fmt.Errorf("dial %s %s: %w", s.network, s.address, err)
		}
		s.conn = conn
	}
	for i, l := range lines {
		s.conn.SetWriteDeadline(time.Now().Add(s.timeout))
		if _, err := s.conn.Write(append(append([]byte(nil), l...), '\n')); err != nil {
			s.conn.Close()
			s.conn = nil
			return i, fmt.Errorf("write %s %s: %w", s.network, s.address, err)
		}
	}
	return len(lines), nil
}

func (s *socketSink) Reopen() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

func (s *socketSink) Close() error {
	s.Reopen()
	return nil
}
