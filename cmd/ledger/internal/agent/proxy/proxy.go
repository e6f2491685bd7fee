// Package proxy owns the agent's API proxy: it forwards Vault API requests
// to the server (adding the auto-auth token when configured), caches leased
// secrets and created tokens, evicts them on revocation, and gives the
// agent's own template engine an in-process connection to itself.
package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// MaxRequestSize bounds a proxied request body, as the server does.
const MaxRequestSize = 32 << 20

// TokenSource returns the current auto-auth token ("" when there is none yet).
type TokenSource func() string

// Proxy forwards requests to Upstream.
type Proxy struct {
	Upstream  *url.URL
	Transport http.RoundTripper
	Token     TokenSource // nil: never add a token
	Force     bool        // replace a token the client sent with the auto-auth one
	Cache     *Cache      // nil: no caching
	Logger    *slog.Logger
	// Denied is called when the server refuses the auto-auth token (403),
	// so auto-auth can log in again.
	Denied func()
}

var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func writeErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string][]string{"errors": {msg}})
	w.Write(b)
}

func requestToken(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") {
		return strings.TrimPrefix(a, "Bearer ")
	}
	return ""
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		writeErr(w, http.StatusNotFound, "the agent proxies /v1/ paths only")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxRequestSize+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "read request body: "+err.Error())
		return
	}
	if len(body) > MaxRequestSize {
		writeErr(w, http.StatusRequestEntityTooLarge, "request body too large")
		return
	}

	token := requestToken(r)
	autoAuth := false
	if p.Token != nil && (token == "" || p.Force) {
		if t := p.Token(); t != "" {
			token, autoAuth = t, true
		}
	}
	method := r.Method
	if method == "LIST" {
		method, r.URL.RawQuery = http.MethodGet, addQuery(r.URL.RawQuery, "list=true")
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/")

	var key string
	if p.Cache != nil && cacheable(method, path) {
		key = requestKey(method, path, r.URL.RawQuery, body, token)
		if e, b, ok := p.Cache.lookup(key); ok {
			copyHeader(w.Header(), e.header)
			w.Header().Set("X-Cache", "HIT")
			w.Header().Set("Age", strconv.Itoa(int(time.Since(e.stored).Seconds())))
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(e.status)
			w.Write(b)
			return
		}
	}

	u := *p.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + r.URL.Path
	u.RawPath = ""
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(r.Context(), method, u.String(), bytes.NewReader(body))
	if err != nil {
		writeErr(w, http.StatusBadRequest, err.Error())
		return
	}
	copyHeader(out.Header, r.Header)
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Header.Del("Authorization")
	out.Header.Del("X-Vault-Token")
	if token != "" {
		out.Header.Set("X-Vault-Token", token)
	}
	resp, err := p.Transport.RoundTrip(out)
	if err != nil {
		p.Logger.Warn("proxy: server unreachable", "path", path, "error", err)
		writeErr(w, http.StatusBadGateway, "ledger agent: the server could not be reached; try again shortly")
		return
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "ledger agent: reading the server's answer: "+err.Error())
		return
	}
	if autoAuth && resp.StatusCode == http.StatusForbidden && p.Denied != nil {
		p.Denied()
	}
	if p.Cache != nil {
		if key != "" {
			p.Cache.store(key, token, resp.StatusCode, resp.Header, rb)
		}
		p.afterResponse(method, path, body, token, resp.StatusCode, rb)
	}
	copyHeader(w.Header(), resp.Header)
	for _, h := range hopHeaders {
		w.Header().Del(h)
	}
	if key != "" {
		w.Header().Set("X-Cache", "MISS")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(rb)))
	w.WriteHeader(resp.StatusCode)
	w.Write(rb)
}

func addQuery(q, kv string) string {
	if q == "" {
		return kv
	}
	return q + "&" + kv
}

func copyHeader(dst, src http.Header) {
	for k, vs := range src {
		if k == "Content-Length" {
			continue
		}
		dst[k] = append([]string(nil), vs...)
	}
}

// cacheable: reads and writes that can hand out a lease or a token. Lease
// and token management itself, and sys, always go to the server.
func cacheable(method, path string) bool {
	if method != http.MethodGet && method != http.MethodPut && method != http.MethodPost {
		return false
	}
	if strings.HasPrefix(path, "sys/") {
		return false
	}
	if strings.HasPrefix(path, "auth/token/") {
		rest := strings.TrimPrefix(path, "auth/token/")
		return strings.HasPrefix(rest, "create")
	}
	return true
}

// afterResponse keeps the cache true to what passed through: renewals move
// expiries, revocations evict.
func (p *Proxy) afterResponse(method, path string, body []byte, token string, status int, resp []byte) {
	ok := status >= 200 && status < 300
	var req struct {
		LeaseID string `json:"lease_id"`
		Token   string `json:"token"`
	}
	json.Unmarshal(body, &req)
	switch {
	case path == "sys/leases/renew" || strings.HasPrefix(path, "sys/leases/renew/") || path == "sys/renew":
		id := req.LeaseID
		if id == "" {
			id = strings.TrimPrefix(strings.TrimPrefix(path, "sys/leases/renew/"), "sys/renew/")
		}
		if ok {
			var env envelope
			if json.Unmarshal(resp, &env) == nil && env.LeaseDuration > 0 {
				p.Cache.renewed(id, time.Duration(env.LeaseDuration)*time.Second)
			}
		} else if status >= 400 && status < 500 {
			p.Cache.EvictLease(id)
		}
	case !ok:
	case path == "sys/leases/revoke" || path == "sys/revoke":
		p.Cache.EvictLease(req.LeaseID)
	case strings.HasPrefix(path, "sys/leases/revoke/"):
		p.Cache.EvictLease(strings.TrimPrefix(path, "sys/leases/revoke/"))
	case strings.HasPrefix(path, "sys/leases/revoke-prefix/"):
		p.Cache.EvictPrefix(strings.TrimPrefix(path, "sys/leases/revoke-prefix/"))
	case strings.HasPrefix(path, "sys/leases/revoke-force/"):
		p.Cache.EvictPrefix(strings.TrimPrefix(path, "sys/leases/revoke-force/"))
	case path == "auth/token/revoke-self":
		p.Cache.EvictToken(token)
	case path == "auth/token/revoke" || path == "auth/token/revoke-orphan":
		p.Cache.EvictToken(req.Token)
	}
}
