package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// maxResponseBytes bounds how much of a response the CLI will buffer; the
// server's own request limit is 32 MiB, so anything bigger is not ours.
const maxResponseBytes = 64 << 20

// clientConfig is everything needed to talk to one server as one identity.
type clientConfig struct {
	Address    string
	Token      string
	CACert     string // path to a PEM bundle; empty means the system pool
	SkipVerify bool
	Timeout    time.Duration
	WrapTTL    string // X-Vault-Wrap-TTL on every request but the CLI's own lookups
}

// Client speaks the Vault-compatible HTTP API. It deliberately does not use
// hashicorp/vault/api: the CLI must keep working when Ledger's API drifts
// from what that client expects, and tests use the official client to check
// compatibility independently of this one.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	wrapTTL string
}

func newClient(cfg clientConfig) (*Client, error) {
	base, err := parseAddress(cfg.Address)
	if err != nil {
		return nil, err
	}
	// InsecureSkipVerify only ever comes from -tls-skip-verify or VAULT_SKIP_VERIFY.
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cfg.SkipVerify}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("read CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA certificate %s: no PEM certificates found", cfg.CACert)
		}
		tlsCfg.RootCAs = pool
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsCfg
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	return &Client{
		base:    base,
		token:   cfg.Token,
		http:    &http.Client{Transport: transport, Timeout: timeout},
		wrapTTL: strings.TrimSpace(cfg.WrapTTL),
	}, nil
}

// parseAddress accepts Vault-style addresses: a scheme, a host and
// optionally a path prefix (for servers behind a reverse proxy).
func parseAddress(addr string) (*url.URL, error) {
	if !strings.HasPrefix(addr, "http://") && !strings.HasPrefix(addr, "https://") {
		return nil, fmt.Errorf("invalid address %q: it must start with http:// or https://", addr)
	}
	u, err := url.Parse(addr)
	if err != nil {
		return nil, fmt.Errorf("invalid address %q: %w", addr, err)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid address %q: no host", addr)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	u.RawQuery = ""
	u.Fragment = ""
	return u, nil
}

// WithToken returns a client that authenticates as token, sharing the transport.
func (c *Client) WithToken(token string) *Client {
	cp := *c
	cp.token = token
	return &cp
}

// Address is the server address, as configured.
func (c *Client) Address() string { return c.base.String() }

// HasToken reports whether requests carry a token.
func (c *Client) HasToken() bool { return c.token != "" }

// Get reads path. A 404 without data is not an error: it returns (nil, nil),
// as Vault's client does, so callers can say "No value found".
func (c *Client) Get(ctx context.Context, path string, query url.Values) (*Secret, error) {
	return c.tolerate404(c.do(ctx, http.MethodGet, path, query, nil))
}

// List sends the LIST verb; a 404 (Vault's answer to an empty list) returns (nil, nil).
func (c *Client) List(ctx context.Context, path string) (*Secret, error) {
	return c.tolerate404(c.do(ctx, "LIST", path, nil, nil))
}

// Put writes body (JSON-encoded) to path; a 204 returns (nil, nil).
func (c *Client) Put(ctx context.Context, path string, body any) (*Secret, error) {
	return secretOf(c.do(ctx, http.MethodPut, path, nil, body))
}

// Post is Put with the POST verb; the API treats them alike, but some
// endpoints are documented as POST and audit logs show the verb.
func (c *Client) Post(ctx context.Context, path string, body any) (*Secret, error) {
	return secretOf(c.do(ctx, http.MethodPost, path, nil, body))
}

// Delete deletes path; a 204 returns (nil, nil).
func (c *Client) Delete(ctx context.Context, path string) (*Secret, error) {
	return secretOf(c.do(ctx, http.MethodDelete, path, nil, nil))
}

// Patch sends body as a JSON merge patch (RFC 7396).
func (c *Client) Patch(ctx context.Context, path string, body any) (*Secret, error) {
	return secretOf(c.do(ctx, http.MethodPatch, path, nil, body))
}

// Call sends one request and decodes a JSON answer into out (if out is not
// nil and there is a body). It is for endpoints that do not answer with the
// secret envelope, such as sys/seal-status and sys/init.
func (c *Client) Call(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.do(ctx, method, path, nil, body)
	if err != nil {
		return err
	}
	if out == nil || len(bytes.TrimSpace(resp.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.body, out); err != nil {
		return fmt.Errorf("decode response from %s %s: %w", method, c.url(path, nil).Redacted(), err)
	}
	return nil
}

type response struct {
	status int
	body   []byte
}

func (c *Client) url(path string, query url.Values) *url.URL {
	u := *c.base
	u.Path = c.base.Path + "/v1/" + strings.TrimLeft(path, "/")
	if len(query) > 0 {
		u.RawQuery = query.Encode()
	}
	return &u
}

// do performs one request. Any status >= 400 becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body any) (*response, error) {
	u := c.url(path, query)
	var reqBody io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request body: %w", err)
		}
		reqBody = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reqBody)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Request", "true")
	if c.token != "" {
		req.Header.Set("X-Vault-Token", c.token)
	}
	if c.wrapTTL != "" && !strings.HasPrefix(strings.TrimLeft(path, "/"), "sys/internal/ui/mounts") {
		// The CLI's own preflight lookups (which KV version a mount has) are never wrapped, as
		// Vault's CLI does; the request the user asked for is.
		req.Header.Set("X-Vault-Wrap-TTL", c.wrapTTL)
	}
	if body != nil {
		if method == http.MethodPatch {
			req.Header.Set("Content-Type", "application/merge-patch+json")
		} else {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.redact(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read response from %s %s: %w", method, u.Redacted(), c.redact(err))
	}
	if resp.StatusCode >= 400 {
		return &response{status: resp.StatusCode, body: data}, c.apiError(method, u, resp.StatusCode, data)
	}
	return &response{status: resp.StatusCode, body: data}, nil
}

func (c *Client) apiError(method string, u *url.URL, status int, body []byte) *APIError {
	e := &APIError{Method: method, URL: u.Redacted(), StatusCode: status}
	var decoded struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal(body, &decoded); err != nil {
		e.Raw = true
		e.Errors = []string{strings.TrimSpace(string(body))}
	} else {
		e.Errors = decoded.Errors
	}
	for i, msg := range e.Errors {
		e.Errors[i] = c.redactString(msg)
	}
	return e
}

// redact keeps the token out of anything the CLI might print, whatever a
// server or a proxy chose to echo back.
func (c *Client) redact(err error) error {
	if c.token == "" || !strings.Contains(err.Error(), c.token) {
		return err
	}
	return &redactedError{msg: c.redactString(err.Error()), err: err}
}

func (c *Client) redactString(s string) string {
	if c.token == "" {
		return s
	}
	return strings.ReplaceAll(s, c.token, "<redacted>")
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

func (c *Client) tolerate404(resp *response, err error) (*Secret, error) {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound {
		// Vault answers a read of a deleted KV v2 version with 404 and the
		// version's metadata; keep that, drop bare 404s.
		s, perr := parseSecret(resp.body)
		if perr == nil && s != nil && (len(s.Data) > 0 || len(s.Warnings) > 0) {
			return s, nil
		}
		return nil, nil
	}
	return secretOf(resp, err)
}

func secretOf(resp *response, err error) (*Secret, error) {
	if err != nil {
		return nil, err
	}
	return parseSecret(resp.body)
}

// APIError is an error answer from the server: an HTTP status >= 400 and
// the messages of its {"errors":[...]} body.
type APIError struct {
	Method     string
	URL        string
	StatusCode int
	Errors     []string
	Raw        bool // the body was not the JSON error envelope
}

// Error renders the error as Vault's CLI does, so scripts and muscle memory
// carry over.
func (e *APIError) Error() string {
	kind := "Errors"
	if e.Raw {
		kind = "Raw Message"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Error making API request.\n\nURL: %s %s\nCode: %d. %s:\n", e.Method, e.URL, e.StatusCode, kind)
	if e.Raw && len(e.Errors) == 1 {
		b.WriteString("\n" + e.Errors[0])
		return b.String()
	}
	if len(e.Errors) > 0 {
		b.WriteString("\n")
	}
	for i, msg := range e.Errors {
		if i > 0 {
			b.WriteString("\n")
		}
		b.WriteString("* " + msg)
	}
	return b.String()
}

// Contains reports whether any of the server's messages contains substr.
func (e *APIError) Contains(substr string) bool {
	for _, msg := range e.Errors {
		if strings.Contains(strings.ToLower(msg), strings.ToLower(substr)) {
			return true
		}
	}
	return false
}

// Secret is the API's success envelope, with Vault's field names and order
// so that -format=json prints what Vault's CLI prints.
type Secret struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
	Auth          *SecretAuth    `json:"auth,omitempty"`
	WrapInfo      *WrapInfo      `json:"wrap_info,omitempty"`
	MountType     string         `json:"mount_type,omitempty"`

	// top is the whole decoded body: sys endpoints answer at the top level
	// as well as (or instead of) under "data".
	top map[string]any
}

// SecretAuth is the "auth" block of a login or token-create answer.
type SecretAuth struct {
	ClientToken      string            `json:"client_token"`
	Accessor         string            `json:"accessor"`
	Policies         []string          `json:"policies"`
	TokenPolicies    []string          `json:"token_policies"`
	IdentityPolicies []string          `json:"identity_policies"`
	Metadata         map[string]string `json:"metadata"`
	Orphan           bool              `json:"orphan"`
	EntityID         string            `json:"entity_id"`
	LeaseDuration    int               `json:"lease_duration"`
	Renewable        bool              `json:"renewable"`
	TokenType        string            `json:"token_type,omitempty"`
}

// WrapInfo is the "wrap_info" block of a response-wrapped answer.
type WrapInfo struct {
	Token           string `json:"token"`
	Accessor        string `json:"accessor"`
	TTL             int    `json:"ttl"`
	CreationTime    string `json:"creation_time"`
	CreationPath    string `json:"creation_path"`
	WrappedAccessor string `json:"wrapped_accessor,omitempty"`
}

// parseSecret decodes a response body; an empty body (204) is (nil, nil).
// Numbers stay json.Number so that large integers print exactly.
func parseSecret(body []byte) (*Secret, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var s Secret
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	dec = json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&s.top); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return &s, nil
}

// DataOrTop returns "data" when the server filled it, else the top-level
// object: sys endpoints have answered both ways across Vault versions.
func (s *Secret) DataOrTop() map[string]any {
	if s == nil {
		return nil
	}
	if len(s.Data) > 0 {
		return s.Data
	}
	return s.top
}
