package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// High availability at the HTTP edge. Standbys answer reads from their own views; writes (and
// sys/ operations other than the node-local ones) go to the active node through a reverse
// proxy that keeps the client's method, path, headers and body, and tells the active node the
// client's address under a keyring MAC. With X-Vault-No-Request-Forwarding the standby answers
// 307 to the active node's api_addr instead, as Vault does. Every response carries
// X-Vault-Index, the log position the answer reflects, in Vault's format; a request that
// presents one waits (bounded) until this node has applied it, or is forwarded.

const (
	indexHeader        = "X-Vault-Index"
	noForwardHeader    = "X-Vault-No-Request-Forwarding"
	forwardedForHeader = "X-Ledger-Forwarded-For"
	forwardedSigHeader = "X-Ledger-Forwarded-Sig"
	// indexWait bounds how long a standby waits for a presented position before forwarding.
	indexWait = 2 * time.Second
	// forwardSkew bounds the age of a forwarded client address claim.
	forwardSkew = time.Minute
	// noActiveMsg is Vault's message when a standby knows no active node.
	noActiveMsg = "local node not active but active cluster node not found"
)

// nodeLocal are the paths every node answers itself, active or not.
var nodeLocal = []string{"/v1/sys/health", "/v1/sys/leader", "/v1/sys/ha-status", "/v1/sys/seal-status", "/v1/sys/unseal",
	"/v1/sys/seal", "/v1/sys/step-down", "/v1/sys/metrics", "/v1/sys/storage/raft/autopilot/state",
	"/v1/sys/storage/raft/configuration", "/v1/sys/host-info", "/v1/sys/in-flight-req", "/v1/sys/pprof"}

func isNodeLocal(path string) bool {
	for _, p := range nodeLocal {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// readOnly: methods a standby can answer from its views. sys/ is forwarded whatever the method
// (its reads include sudo operations that must not be answered from a view that lags).
func readOnly(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, "LIST", http.MethodOptions:
		return !strings.HasPrefix(r.URL.Path, "/v1/sys/")
	}
	return false
}

// haEdge is the middleware (before routing) that does all of the above.
func (a *api) haEdge(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		a.trustForwarded(r)
		c.Response().Before(func() {
			// A forwarded answer keeps the active node's position (it is the one that wrote).
			if c.Response().Header().Get(indexHeader) != "" {
				return
			}
			if v := a.indexValue(); v != "" {
				c.Response().Header().Set(indexHeader, v)
			}
		})
		if !a.core.IsStandby() || isNodeLocal(r.URL.Path) {
			return next(c)
		}
		if !readOnly(r) {
			return a.forward(c)
		}
		if idx := r.Header.Get(indexHeader); idx != "" {
			if seq, ok := a.parseIndex(idx); ok && seq > a.core.Applied() {
				ctx, cancel := context.WithTimeout(r.Context(), indexWait)
				err := a.core.WaitApplied(ctx, seq)
				cancel()
				if err != nil {
					return a.forward(c)
				}
			}
		}
		return next(c)
	}
}

// indexValue encodes the applied position as Vault's state header:
// base64("v1:<cluster id>:<local index>:<replicated index>:<hex hmac>").
func (a *api) indexValue() string {
	seq := a.core.Applied()
	if seq == 0 {
		return ""
	}
	_, id := a.core.ClusterInfo()
	state := fmt.Sprintf("v1:%s:%d:%d", id, seq, seq)
	mac, ok := a.core.HAMAC("index", state)
	if !ok {
		return ""
	}
	return base64.StdEncoding.EncodeToString([]byte(state + ":" + mac))
}

// parseIndex reads a state header this cluster issued; anything else is ignored (Vault merges
// several states in one header with commas: the highest position wins).
func (a *api) parseIndex(v string) (uint64, bool) {
	var best uint64
	found := false
	for _, one := range strings.Split(v, ",") {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(one))
		if err != nil {
			continue
		}
		s := string(raw)
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			continue
		}
		state, mac := s[:i], s[i+1:]
		want, ok := a.core.HAMAC("index", state)
		if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(mac)) != 1 {
			continue
		}
		parts := strings.Split(state, ":")
		if len(parts) != 4 {
			continue
		}
		n, err := strconv.ParseUint(parts[2], 10, 64)
		if err == nil && n > best {
			best, found = n, true
		}
	}
	return best, found
}

// forward sends the request to the active node, or answers 307 / Vault's 500 message.
func (a *api) forward(c echo.Context) error {
	r := c.Request()
	st := a.core.HAStatus(r.Context())
	if !st.LeaderKnown || st.Leader.APIAddr == "" || st.Leader.Node == st.Node {
		writeErrors(c, http.StatusInternalServerError, noActiveMsg)
		return nil
	}
	target, err := url.Parse(st.Leader.APIAddr)
	if err != nil {
		writeErrors(c, http.StatusInternalServerError, noActiveMsg)
		return nil
	}
	if r.Header.Get(noForwardHeader) != "" {
		loc := *target
		loc.Path, loc.RawQuery = r.URL.Path, r.URL.RawQuery
		return c.Redirect(http.StatusTemporaryRedirect, loc.String())
	}
	remote := r.RemoteAddr
	claim := remote + "|" + strconv.FormatInt(time.Now().Unix(), 10)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = r.Host
			pr.Out.Header.Del(forwardedForHeader)
			pr.Out.Header.Del(forwardedSigHeader)
			if mac, ok := a.core.HAMAC("forward", claim); ok {
				pr.Out.Header.Set(forwardedForHeader, claim)
				pr.Out.Header.Set(forwardedSigHeader, mac)
			}
		},
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			a.log.Warn("ha: forwarding to the active node", "active", st.Leader.APIAddr, "err", err)
			// The active node did not answer: let the client go there itself.
			loc := *target
			loc.Path, loc.RawQuery = r.URL.Path, r.URL.RawQuery
			w.Header().Set("Location", loc.String())
			w.WriteHeader(http.StatusTemporaryRedirect)
		},
	}
	proxy.ServeHTTP(c.Response(), r)
	return nil
}

// trustForwarded takes the client address a standby vouched for under the keyring, so token
// CIDR bindings and audit see the real client, never the standby.
func (a *api) trustForwarded(r *http.Request) {
	claim, sig := r.Header.Get(forwardedForHeader), r.Header.Get(forwardedSigHeader)
	r.Header.Del(forwardedForHeader)
	r.Header.Del(forwardedSigHeader)
	if claim == "" {
		return
	}
	want, ok := a.core.HAMAC("forward", claim)
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return
	}
	i := strings.LastIndexByte(claim, '|')
	if i < 0 {
		return
	}
	ts, err := strconv.ParseInt(claim[i+1:], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > forwardSkew {
		return
	}
	r.RemoteAddr = claim[:i]
}
