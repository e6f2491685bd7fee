// Package httpapi is the HTTP edge of Ledger: it speaks Vault's API conventions (envelope,
// {"errors":[…]}, LIST, 204, X-Vault-Token) on echo and turns each call into a
// commands.Request. It holds no domain logic; errors are mapped to status codes here, once.
package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/ledger/autoseal"
)

// DefaultMaxRequestBytes is Vault's default request size limit.
const DefaultMaxRequestBytes = 32 << 20

// Options configure the HTTP API.
type Options struct {
	MaxRequestBytes int64
	Limits          Limits // max_json_* and max_request_fields
	APIAddr         string
	Logger          *slog.Logger
	// UnauthenticatedMetrics serves GET sys/metrics without a token (Vault's listener
	// telemetry { unauthenticated_metrics_access = true }).
	UnauthenticatedMetrics bool
}

type api struct {
	core *commands.Core
	opts Options
	log  *slog.Logger
	// index is the last X-Vault-Index value computed: at a steady position every response
	// carries the same one, and computing it is an HMAC and three encodings.
	index atomic.Pointer[indexMemo]
}

// New returns the HTTP handler for core.
func New(core *commands.Core, opts Options) *echo.Echo {
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &api{core: core, opts: opts, log: opts.Logger}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = jsonSerializer{}
	e.HTTPErrorHandler = a.echoError
	e.Pre(a.cors) // sys/config/cors, before routing so preflights (OPTIONS) reach it
	e.Pre(a.haEdge)
	registerMetrics(e, a)
	e.GET("/v1/sys/init", a.initStatus)
	e.PUT("/v1/sys/init", a.init)
	e.POST("/v1/sys/init", a.init)
	e.PUT("/v1/sys/unseal", a.unseal)
	e.POST("/v1/sys/unseal", a.unseal)
	e.GET("/v1/sys/seal-status", a.sealStatus)
	e.GET("/v1/sys/health", a.health)
	e.HEAD("/v1/sys/health", a.health)
	e.GET("/v1/sys/leader", a.leader)
	registerSnapshot(e, a)
	registerEvents(e, a)
	registerCeremonies(e, a)
	// HEAD reads like GET (ACME's new-nonce is fetched with HEAD); the server drops the body.
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, "LIST", "HELP"} {
		e.Add(m, "/v1/*", a.logical)
	}
	return e
}

// echoError answers echo's own errors (404 for unknown routes, 405) in Vault's shape.
func (a *api) echoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := fmt.Sprint(he.Message)
		if he.Code == http.StatusNotFound {
			msg = "no handler for route " + c.Request().URL.Path
		}
		writeErrors(c, he.Code, msg)
		return
	}
	a.fail(c, "", err)
}

func writeErrors(c echo.Context, code int, msgs ...string) {
	if msgs == nil {
		msgs = []string{}
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(code)
		return
	}
	c.JSON(code, map[string]any{"errors": msgs})
}

// fail maps an error to its status, once. Messages of user errors are shown as written (they
// never hold secrets); anything else is logged with the request id and shown generically.
func (a *api) fail(c echo.Context, reqID string, err error) error {
	status, msg := http.StatusInternalServerError, ""
	switch {
	case errors.Is(err, commands.ErrSealed):
		status, msg = http.StatusServiceUnavailable, "Vault is sealed"
	case errors.Is(err, engines.ErrBadRequest), errors.Is(err, commands.ErrBadShare),
		errors.Is(err, commands.ErrInvalidInit), errors.Is(err, commands.ErrAlreadyInitialized),
		errors.Is(err, commands.ErrNotInitialized), errors.Is(err, commands.ErrInvalidPath),
		errors.Is(err, commands.ErrSealMode), errors.Is(err, commands.ErrNoRecoveryKey):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, autoseal.ErrUnreachable), errors.Is(err, autoseal.ErrKeyUnusable):
		// The seal's key service: the message names the seal and the key, never key material.
		status, msg = http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, engines.ErrPermissionDenied):
		status, msg = http.StatusForbidden, "permission denied"
		if err != engines.ErrPermissionDenied {
			msg = err.Error() // e.g. the token engine's "bad token"
		}
	case errors.Is(err, engines.ErrNotFound):
		status = http.StatusNotFound
		if err != engines.ErrNotFound {
			msg = err.Error()
		}
	case errors.Is(err, engines.ErrUnsupported):
		status, msg = http.StatusMethodNotAllowed, "unsupported operation"
	case errors.Is(err, engines.ErrRateLimited):
		status, msg = http.StatusTooManyRequests, err.Error()
	case commands.IsStandbyErr(err):
		// A request the standby tried to answer itself needed a write (a read that issues a
		// lease); with no active node to forward to, Vault's message.
		status, msg = http.StatusInternalServerError, noActiveMsg
	case errors.Is(err, ledger.ErrConflict):
		status, msg = http.StatusServiceUnavailable, "another node wrote concurrently; retry the request"
	case errors.Is(err, errBodyTooLarge):
		status, msg = http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, ledger.ErrTooLarge):
		status, msg = http.StatusRequestEntityTooLarge, "request too large for one log entry"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status, msg = http.StatusServiceUnavailable, "request cancelled or timed out before it was committed"
	default:
		a.log.Error("request failed", "request_id", reqID, "path", c.Request().URL.Path, "err", err)
		msg = "internal error; the server log has details under request id " + reqID
	}
	if msg == "" {
		writeErrors(c, status)
		return nil
	}
	writeErrors(c, status, msg)
	return nil
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	var out [36]byte // 8-4-4-4-12 hex digits, formatted in place: one allocation per request
	hex.Encode(out[0:8], b[0:4])
	hex.Encode(out[9:13], b[4:6])
	hex.Encode(out[14:18], b[6:8])
	hex.Encode(out[19:23], b[8:10])
	hex.Encode(out[24:], b[10:])
	out[8], out[13], out[18], out[23] = '-', '-', '-', '-'
	return string(out[:])
}

// token reads X-Vault-Token, or Authorization: Bearer.
func token(r *http.Request) string {
	if t := r.Header.Get("X-Vault-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}

// jsonProblem describes a JSON error without quoting the input (it may hold a secret).
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON syntax at byte %d", se.Offset)
	case errors.As(err, &te):
		return "expected a JSON object"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "unexpected end of input"
	}
	return "invalid JSON"
}

// logical serves every authenticated path through the pipeline.
func (a *api) logical(c echo.Context) error {
	r := c.Request()
	reqID := newRequestID()
	defer a.core.TrackRequest(reqID, r.Method, r.URL.Path, r.RemoteAddr)()
	// Route on the decoded path, as Vault does: "enc%2Fkey" is "enc/key", and an encoded ".."
	// is a ".." that ValidatePath refuses.
	path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/v1"), "/")
	req := &commands.Request{ID: reqID, Path: path, Token: token(r), RemoteAddr: r.RemoteAddr, WrapTTL: r.Header.Get("X-Vault-Wrap-TTL")}
	var err error
	// Vault answers any method with a non-empty help parameter, and HELP, with the path's
	// help: never the data (commands.Request.Help).
	req.Help = r.URL.Query().Get("help") != "" || r.Method == "HELP"
	drain := func() {}
	switch r.Method {
	case http.MethodGet, http.MethodHead, "HELP":
		req.Op = engines.OpRead
		if v := r.URL.Query().Get("list"); v != "" {
			list, perr := strconv.ParseBool(v)
			if perr != nil {
				return a.fail(c, reqID, engines.BadRequest("query parameter list=%q: expected a boolean", v))
			}
			if list {
				req.Op = engines.OpList
			}
		}
	case "LIST":
		req.Op = engines.OpList
	case http.MethodPost, http.MethodPut:
		req.Op = engines.OpUpdate
	case http.MethodPatch:
		req.Op = engines.OpPatch
	case http.MethodDelete:
		req.Op = engines.OpDelete
	}
	switch req.Op {
	case engines.OpRead, engines.OpList, engines.OpDelete:
		req.Data = map[string]any{}
		for k, v := range r.URL.Query() {
			if k != "list" && len(v) > 0 {
				req.Data[k] = v[0]
			}
		}
	default:
		b := a.body(c)
		// Decoded after authentication: a refused request is never decoded.
		req.Body = func() (map[string]any, error) {
			if data, isRaw, err := a.rawBody(c); isRaw {
				return data, err
			}
			return b.decode()
		}
		drain = b.drain
	}
	canonical := commands.CanonicalPath
	if req.Op == engines.OpRead {
		canonical = func(p string, _ bool) (string, error) { return commands.CanonicalReadPath(p) }
	}
	if req.Path, err = canonical(req.Path, req.Op == engines.OpList); err != nil {
		drain()
		return a.fail(c, reqID, err)
	}
	ctx, limits := commands.WithRateLimitHeaders(r.Context())
	resp, err := a.core.Handle(ctx, req)
	drain() // before the answer, so a refused client is not cut off mid-send
	if forwardAfter(r, req.Op, err) {
		return a.forward(c)
	}
	limits.Each(c.Response().Header().Set)
	if err != nil {
		return a.fail(c, reqID, err)
	}
	return respond(c, reqID, req.Op, resp)
}

// envelope is Vault's response body (its logical.HTTPResponse, fields in the same order). A
// struct rather than a map: encoding/json caches a struct's encoder, where a map is sorted and
// reflected on every response.
type envelope struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int64          `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      any            `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          *envelopeAuth  `json:"auth"`
	MountType     string         `json:"mount_type"`
}

// envelopeAuth is the envelope's auth block (Vault's logical.HTTPAuth).
type envelopeAuth struct {
	ClientToken      string   `json:"client_token"`
	Accessor         string   `json:"accessor"`
	Policies         []string `json:"policies"`
	TokenPolicies    []string `json:"token_policies"`
	IdentityPolicies []string `json:"identity_policies"`
	Metadata         any      `json:"metadata"`
	LeaseDuration    int64    `json:"lease_duration"`
	Renewable        bool     `json:"renewable"`
	EntityID         string   `json:"entity_id"`
	TokenType        string   `json:"token_type"`
	Orphan           bool     `json:"orphan"`
	MFARequirement   any      `json:"mfa_requirement"`
	NumUses          int      `json:"num_uses"`
}

// respond writes Vault's envelope, or 204 when there is nothing to say.
func respond(c echo.Context, reqID string, op engines.Operation, resp *engines.Response) error {
	if written, err := writeRaw(c, resp); written {
		return err
	}
	if op == engines.OpList {
		if keys, _ := resp.Data["keys"].([]string); resp.Status == 0 && len(keys) == 0 && resp.Data != nil {
			writeErrors(c, http.StatusNotFound)
			return nil
		}
	}
	if resp.WrapInfo != nil {
		return c.JSON(http.StatusOK, wrapEnvelope(reqID, resp.WrapInfo))
	}
	if resp.Status == 0 && resp.Data == nil && resp.Auth == nil && resp.Secret == nil && len(resp.Warnings) == 0 {
		return c.NoContent(http.StatusNoContent)
	}
	env := envelope{RequestID: reqID, Data: resp.Data, MountType: resp.MountType}
	if len(resp.Warnings) > 0 {
		env.Warnings = resp.Warnings
	}
	if s := resp.Secret; s != nil {
		env.LeaseID, env.Renewable, env.LeaseDuration = s.LeaseID, s.Renewable, int64(s.LeaseDuration/time.Second)
	}
	if au := resp.Auth; au != nil {
		a := &envelopeAuth{
			ClientToken: au.ClientToken, Accessor: au.Accessor, Policies: au.Policies,
			TokenPolicies: au.TokenPolicies, IdentityPolicies: au.IdentityPolicies,
			LeaseDuration: int64(au.LeaseDuration / time.Second), Renewable: au.Renewable,
			EntityID: au.EntityID, TokenType: au.TokenType, Orphan: au.Orphan, NumUses: au.NumUses,
		}
		if len(au.Metadata) > 0 {
			a.Metadata = au.Metadata
		}
		env.Auth = a
	}
	status := resp.Status
	if status == 0 {
		status = http.StatusOK
	}
	return c.JSON(status, env)
}
