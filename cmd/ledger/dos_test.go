package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestUnauthenticatedBodiesStayCheap: ten 1,500,000-key bodies (about 23 MB each) sent at once
// without a token are refused with 403 without being decoded: the server's peak memory stays
// under 200 MB, and the records of the denials add only a few KB to LEDGER_AUDIT.
func TestUnauthenticatedBodiesStayCheap(t *testing.T) {
	start := time.Now()
	s := startChildServer(t, "")
	t.Logf("server up after %v", time.Since(start))
	body := manyKeys(1_500_000)
	auditBefore := s.streamBytes("LEDGER_AUDIT")

	const n = 10
	var wg sync.WaitGroup
	statuses := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPost, s.addr+"/v1/secret/data/x", bytes.NewReader(body))
			resp, err := (&http.Client{Transport: &http.Transport{}, Timeout: 2 * time.Minute}).Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	t.Logf("requests done after %v", time.Since(start))
	for i := range n {
		if errs[i] != nil || statuses[i] != http.StatusForbidden {
			t.Errorf("request %d: status %d, err %v; want 403", i, statuses[i], errs[i])
		}
	}
	if peak := s.peakRSS(); peak >= 200<<20 {
		t.Errorf("server peak RSS %d MB while refusing %d unauthenticated %d-byte bodies; want < 200 MB", peak>>20, n, len(body))
	} else {
		t.Logf("server peak RSS %d MB", peak>>20)
	}

	// The records are acknowledged before the answers; give the stream a moment to write them.
	var grown int64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if grown = s.streamBytes("LEDGER_AUDIT") - auditBefore; grown > 0 {
			time.Sleep(300 * time.Millisecond)
			grown = s.streamBytes("LEDGER_AUDIT") - auditBefore
			break
		}
	}
	if grown <= 0 {
		t.Errorf("LEDGER_AUDIT did not grow: the denials were not audited")
	}
	if per := grown / n; per > 4<<10 {
		t.Errorf("each denied request added %d bytes to LEDGER_AUDIT; want at most 4 KB", per)
	}
}

// TestStalledBodyIsClosed: a client that promises a body and stops sending is cut off after
// the listener's http_read_timeout, whether its request carries a valid token or none.
func TestStalledBodyIsClosed(t *testing.T) {
	s := startChildServer(t, `  http_read_timeout = "1s"`)
	for _, tok := range []string{"", s.root} {
		name := "no token"
		if tok != "" {
			name = "root token"
		}
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(s.addr, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			hdr := "POST /v1/secret/data/stall HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n"
			if tok != "" {
				hdr += "X-Vault-Token: " + tok + "\r\n"
			}
			fmt.Fprintf(conn, "%s\r\n{\"data\":{\"k\":\"", hdr)
			// The test's own bound: far above the 1s timeout, so only a server that never
			// closes the connection fails it.
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			start := time.Now()
			rd := bufio.NewReader(conn)
			_, err = io.ReadAll(rd)
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server kept a stalled body open for %v", time.Since(start).Round(time.Second))
			}
		})
	}
	// The server still answers.
	s.call(http.MethodGet, "sys/health", "", "", nil)
}
