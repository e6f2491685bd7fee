package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// httpSink POSTs batches of entries to a SIEM or webhook: newline-delimited JSON, or Splunk's
// HTTP Event Collector format. A batch counts as delivered on a 2xx answer; anything else is
// retried, with the device's backoff. A lost answer means the batch is sent again, so delivery
// is at least once; each entry carries its position ("ledger") to deduplicate on.
type httpSink struct {
	s      Settings
	client *http.Client
}

func newHTTPSink(s Settings) *httpSink {
	return &httpSink{s: s, client: &http.Client{Timeout: s.Timeout}}
}

func (h *httpSink) Write(ctx context.Context, lines [][]byte) (int, error) {
	done := 0
	for done < len(lines) {
		end := min(done+h.s.BatchSize, len(lines))
		if err := h.post(ctx, lines[done:end]); err != nil {
			return done, err
		}
		done = end
	}
	return done, nil
}

func (h *httpSink) post(ctx context.Context, lines [][]byte) error {
	var body bytes.Buffer
	contentType := "application/x-ndjson"
	for _, l := range lines {
		if h.s.HTTPFormat == "splunk_hec" {
			contentType = "application/json"
			b, err := json.Marshal(struct {
				Event      json.RawMessage `json:"event"`
				SourceType string          `json:"sourcetype"`
			}{json.RawMessage(l), "ledger:audit"})
			if err != nil {
				return fmt.Errorf("encode entry for splunk_hec: %w", err)
			}
			body.Write(b)
		} else {
			body.Write(l)
		}
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.s.URL, &body)
	if err != nil {
		return fmt.Errorf("post to %s: %w", redactURL(h.s.URL), err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range h.s.Headers {
		req.Header.Set(k, v)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("post to %s: %s", redactURL(h.s.URL), describe(err))
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post to %s: status %d", redactURL(h.s.URL), resp.StatusCode)
	}
	return nil
}

func (h *httpSink) Reopen() { h.client.CloseIdleConnections() }

func (h *httpSink) Close() error {
	h.client.CloseIdleConnections()
	return nil
}

// redactURL drops credentials and the query (HEC tokens are sometimes passed there).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

func httpHostPort(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	return net.JoinHostPort(host, port), nil
}
