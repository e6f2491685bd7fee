package audit

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func entryLine(t *testing.T, stream string, seq uint64, typ string) []byte {
	t.Helper()
	b, err := json.Marshal(Entry{Type: typ, Request: &Request{Path: "p"}, Ledger: &Position{Stream: stream, Seq: seq}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFileSinkResumeCutsATornLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	s := &fileSink{path: path, mode: 0o600, prefix: "> "}
	lines := [][]byte{
		append([]byte("> "), entryLine(t, "LEDGER", 3, "request")...),
		append([]byte("> "), entryLine(t, "LEDGER", 3, "response")...),
		append([]byte("> "), entryLine(t, "LEDGER_AUDIT", 9, "request")...),
	}
	if n, err := s.Write(context.Background(), lines); n != 3 || err != nil {
		t.Fatal(n, err)
	}
	s.Close()
	// A crash tore the next write.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`> {"type":"request","ledger":{"stream":"LEDGER","seq":4`)
	f.Close()
	got, err := s.Resume()
	if err != nil {
		t.Fatal(err)
	}
	if w := got["LEDGER"]; w.Pos.Seq != 3 || w.Part != 1 {
		t.Fatalf("LEDGER resumes at %+v", w)
	}
	if w := got["LEDGER_AUDIT"]; w.Pos.Seq != 9 || w.Part != 0 {
		t.Fatalf("LEDGER_AUDIT resumes at %+v", w)
	}
	b, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(b), "\n") || strings.Count(string(b), "\n") != 3 {
		t.Fatalf("the torn line was not cut: %q", b)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

// The sink never writes to a file its path no longer names: rotated away, it starts a new one;
// with the directory gone, it fails until the directory is back.
func TestFileSinkFollowsItsPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	os.Mkdir(dir, 0o700)
	path := filepath.Join(dir, "audit.log")
	s := &fileSink{path: path, mode: 0o600}
	defer s.Close()
	ctx := context.Background()
	if _, err := s.Write(ctx, [][]byte{[]byte("one")}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(ctx, [][]byte{[]byte("two")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Fatalf("after rotation the file holds %q", b)
	}
	if b, _ := os.ReadFile(path + ".1"); string(b) != "one\n" {
		t.Fatalf("the rotated file holds %q", b)
	}
	os.Rename(dir, dir+".away")
	os.WriteFile(dir, nil, 0o600)
	if n, err := s.Write(ctx, [][]byte{[]byte("three")}); err == nil || n != 0 {
		t.Fatalf("write with the directory replaced by a file: %d, %v", n, err)
	}
	os.Remove(dir)
	os.Rename(dir+".away", dir)
	if _, err := s.Write(ctx, [][]byte{[]byte("three")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\nthree\n" {
		t.Fatalf("after the directory came back the file holds %q", b)
	}
	// Reopen (SIGHUP) is harmless.
	s.Reopen()
	if _, err := s.Write(ctx, [][]byte{[]byte("four")}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\nthree\nfour\n" {
		t.Fatalf("after reopen the file holds %q", b)
	}
}
