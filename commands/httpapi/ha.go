package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
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

// nodeLocal are the paths every node answers itself, active or not. sys/step-down is not one
// of them: as in Vault, a standby forwards it, and the active node steps down.
var nodeLocal = []string{"/v1/sys/health", "/v1/sys/leader", "/v1/sys/ha-status", "/v1/sys/seal-status", "/v1/sys/unseal",
	"/v1/sys/seal", "/v1/sys/metrics", "/v1/sys/storage/raft/autopilot/state",
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
		if a.trustForwarded(r) {
			r = r.WithContext(context.WithValue(r.Context(), forwardedKey{}, true))
			c.SetRequest(r)
		}
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
	if m := a.index.Load(); m != nil && m.seq == seq && m.cluster == id && a.core.Unsealed() {
		return m.value
	}
	state := fmt.Sprintf("v1:%s:%d:%d", id, seq, seq)
	mac, ok := a.core.HAMAC("index", state)
	if !ok {
		return ""
	}
	v := base64.StdEncoding.EncodeToString([]byte(state + ":" + mac))
	a.index.Store(&indexMemo{seq: seq, cluster: id, value: v})
	return v
}

// indexMemo is one computed X-Vault-Index value and the position and cluster it names.
type indexMemo struct {
	seq     uint64
	cluster string
	value   string
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

// forwardedKey marks, in a request's context, a request another node of the cluster forwarded
// here: it is never forwarded again (two nodes that disagree on the active one would bounce
// it), so its client sees Vault's "no active node" answer and retries.
type forwardedKey struct{}

func wasForwarded(r *http.Request) bool { v, _ := r.Context().Value(forwardedKey{}).(bool); return v }

// forwardAfter reports whether a request the standby tried to answer itself, and that failed
// with err, goes to the active node instead: the command layer said only the active node may
// answer it (a read that appends, such as database/creds/<role> issuing a lease or a
// limited-use token spending a use; a sudo path; an OIDC callback), and nothing of the
// request was consumed here (its body is unread: reads carry their parameters in the query).
func forwardAfter(r *http.Request, op engines.Operation, err error) bool {
	return err != nil && commands.IsStandbyErr(err) && (op == engines.OpRead || op == engines.OpList) &&
		!isNodeLocal(r.URL.Path) && !wasForwarded(r)
}

// unboundedForward are the paths whose body the active node takes without max_request_size
// (snapshot uploads), so a standby forwards them without its own limit.
func unboundedForward(path string) bool {
	return path == "/v1/sys/storage/raft/snapshot" || path == "/v1/sys/storage/raft/snapshot-force"
}

// forward sends the request to the active node, or answers 307 / Vault's 500 message. A body
// over max_request_size is refused with 413 here (before any byte is sent when its length is
// declared; as soon as the limit is crossed otherwise), never passed on cut short.
func (a *api) forward(c echo.Context) error {
	r := c.Request()
	st := a.core.HAStatus(r.Context())
	if wasForwarded(r) || !st.LeaderKnown || st.Leader.APIAddr == "" || st.Leader.Node == st.Node {
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
	limit := a.opts.MaxRequestBytes
	if !unboundedForward(r.URL.Path) && r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > limit {
			writeErrors(c, http.StatusRequestEntityTooLarge, tooLargeMsg(limit))
			return nil
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, limit)
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
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				writeErrors(c, http.StatusRequestEntityTooLarge, tooLargeMsg(limit))
				return
			}
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
// It reports whether the request carried a claim this cluster made.
func (a *api) trustForwarded(r *http.Request) bool {
	claim, sig := r.Header.Get(forwardedForHeader), r.Header.Get(forwardedSigHeader)
	r.Header.Del(forwardedForHeader)
	r.Header.Del(forwardedSigHeader)
	if claim == "" {
		return false
	}
	want, ok := a.core.HAMAC("forward", claim)
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(sig)) != 1 {
		return false
	}
	i := strings.LastIndexByte(claim, '|')
	if i < 0 {
		return false
	}
	ts, err := strconv.ParseInt(claim[i+1:], 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)).Abs() > forwardSkew {
		return false
	}
	r.RemoteAddr = claim[:i]
	return true
}

func tooLargeMsg(limit int64) string {
	return fmt.Sprintf("%s: the limit is %d bytes (listener max_request_size)", errBodyTooLarge, limit)
}
