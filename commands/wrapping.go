package commands

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	enginetoken "github.com/ledger-secrets/ledger/engines/token"
	"github.com/ledger-secrets/ledger/ledger"
	cubbyview "github.com/ledger-secrets/ledger/projections/cubbyhole"
	tokenview "github.com/ledger-secrets/ledger/projections/token"
)

// Response wrapping, as Vault does it. A request carrying X-Vault-Wrap-TTL is answered only
// with wrap_info: a new single-use token (policy "response-wrapping", num_uses 1, the wrap TTL)
// whose cubbyhole holds the real response at "response", sealed under its own data key. The
// response comes back once, through sys/wrapping/unwrap, which revokes the token, drops its
// cubbyhole and shreds the key; an unused token's cubbyhole goes the same way when it expires.
// A wrap TTL that is malformed, not positive, above the system maximum or outside the bounds
// of the matched policy rule refuses the request before anything is done: a response asked
// for wrapped is never sent in the clear.

const (
	wrappingPolicy = "response-wrapping"
	wrappedPath    = "response"
	// maxWrapTTL is the longest wrap TTL accepted: the system's maximum token TTL.
	maxWrapTTL = MaxLeaseTTL
)

// errWrappingToken is Vault's answer to any unwrap, lookup or rewrap of a token that is not a
// live wrapping token.
var errWrappingToken = engines.BadRequest("wrapping token is not valid or does not exist")

// interceptedError is errWrappingToken for a wrapping token that was already unwrapped: the
// client sees Vault's message, the audit record says more, since a second unwrap means someone
// else may have read the response first.
type interceptedError struct{ unwrapped time.Time }

func (e interceptedError) Error() string { return errWrappingToken.Error() }
func (e interceptedError) Unwrap() error { return errWrappingToken }
func (e interceptedError) AuditError() string {
	return fmt.Sprintf("%s (this wrapping token was already unwrapped at %s: possible interception of the wrapped response)",
		errWrappingToken.Error(), e.unwrapped.UTC().Format(time.RFC3339))
}

// parseWrapTTL reads X-Vault-Wrap-TTL: seconds or a duration string; "" means no wrapping.
func parseWrapTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	bad := func(why string) error {
		return engines.BadRequest("invalid wrap TTL (X-Vault-Wrap-TTL): %s; use a positive duration such as \"5m\" or a number of seconds, at most %s", why, maxWrapTTL)
	}
	if strings.HasPrefix(s, "-") {
		return 0, bad("it cannot be negative")
	}
	d, err := engines.ParseDuration(s)
	if err != nil || len(s) > 32 {
		return 0, bad("it does not parse")
	}
	switch {
	case d <= 0:
		return 0, bad("it must be greater than zero")
	case d < time.Second:
		return 0, bad("it must be at least one second")
	case d > maxWrapTTL:
		return 0, bad("it is above the maximum")
	}
	return d, nil
}

// checkWrapBounds enforces a policy rule's min_wrapping_ttl and max_wrapping_ttl: either one
// makes wrapping mandatory on the path, as in Vault.
func checkWrapBounds(d acl.Decision, ttl time.Duration) error {
	switch {
	case d.MaxWrappingTTL > 0 && ttl == 0, d.MinWrappingTTL > 0 && ttl == 0:
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied: a policy requires this request to be response-wrapped; set a wrap TTL (-wrap-ttl, X-Vault-Wrap-TTL)")
	case d.MaxWrappingTTL > 0 && ttl > d.MaxWrappingTTL:
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied: wrap TTL %s exceeds the policy's max_wrapping_ttl of %s", ttl, d.MaxWrappingTTL)
	case d.MinWrappingTTL > 0 && ttl < d.MinWrappingTTL:
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied: wrap TTL %s is below the policy's min_wrapping_ttl of %s", ttl, d.MinWrappingTTL)
	}
	return nil
}

// handleWrapped runs a request and, when a wrap TTL was asked for, wraps its answer. The
// wrapping endpoints that take a wrapping token (lookup, unwrap, rewrap) are served here, before
// the pipeline's authentication, because they answer Vault's 400 for a bad wrapping token.
func (c *Core) handleWrapped(ctx context.Context, st *unsealed, r *Request, trail *auditTrail) (*engines.Response, func(), error) {
	if r.Help {
		return c.handle(ctx, st, r, trail) // help is never wrapped, and never opens a token
	}
	ttl, err := parseWrapTTL(r.WrapTTL)
	if err != nil {
		return nil, nil, err
	}
	r.wrapTTL = ttl
	var resp *engines.Response
	var after func()
	switch p := strings.TrimSuffix(r.Path, "/"); p {
	case "sys/wrapping/lookup", "sys/wrapping/unwrap", "sys/wrapping/rewrap":
		resp, err = c.wrappingEndpoint(ctx, st, r, trail, strings.TrimPrefix(p, "sys/wrapping/"))
	case "sys/wrapping/wrap":
		if ttl == 0 && r.Op != engines.OpRead {
			return nil, nil, engines.BadRequest("sys/wrapping/wrap needs a wrap TTL: set the X-Vault-Wrap-TTL header (the CLI's -wrap-ttl)")
		}
		resp, after, err = c.handle(ctx, st, r, trail)
	default:
		resp, after, err = c.handle(ctx, st, r, trail)
	}
	if err != nil || ttl == 0 || resp == nil || resp.WrapInfo != nil {
		return resp, after, err
	}
	wrapped, err := c.wrap(ctx, st, r.Path, resp, ttl, time.Now().UTC())
	if err != nil {
		// The request itself succeeded, but its answer cannot be given in the clear.
		return nil, after, fmt.Errorf("wrap response: %w", err)
	}
	return wrapped, after, nil
}

// wrappedResponse is what the wrapping token's cubbyhole holds.
type wrappedResponse struct {
	Data          map[string]any `json:"data,omitempty"`
	Warnings      []string       `json:"warnings,omitempty"`
	Auth          *engines.Auth  `json:"auth,omitempty"`
	LeaseID       string         `json:"lease_id,omitempty"`
	LeaseDuration time.Duration  `json:"lease_duration,omitempty"`
	Renewable     bool           `json:"renewable,omitempty"`
}

// wrap stores resp in a new wrapping token's cubbyhole and answers with its wrap_info. A
// response with nothing in it (204) or an error status is returned as it is.
func (c *Core) wrap(ctx context.Context, st *unsealed, creationPath string, resp *engines.Response, ttl time.Duration, now time.Time) (*engines.Response, error) {
	if (resp.Status != 0 && resp.Status != 200) || (resp.Data == nil && resp.Auth == nil && resp.Secret == nil && len(resp.Warnings) == 0) {
		return resp, nil
	}
	w := wrappedResponse{Data: resp.Data, Warnings: resp.Warnings, Auth: resp.Auth}
	if s := resp.Secret; s != nil {
		w.LeaseID, w.LeaseDuration, w.Renewable = s.LeaseID, s.LeaseDuration, s.Renewable
	}
	plain, err := json.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode response: %w", err)
	}
	defer clear(plain)
	info, err := c.newWrappingToken(ctx, st, creationPath, plain, ttl, now)
	if err != nil {
		return nil, err
	}
	if resp.Auth != nil {
		info.WrappedAccessor = resp.Auth.Accessor
	}
	return &engines.Response{WrapInfo: info}, nil
}

// newWrappingToken creates a wrapping token holding plain and waits until it is applied.
func (c *Core) newWrappingToken(ctx context.Context, st *unsealed, creationPath string, plain []byte, ttl time.Duration, now time.Time, extra ...ledger.Event) (*engines.WrapInfo, error) {
	tok, accessor := enginetoken.NewToken()
	mac := st.keyring.Load().MAC("token", tok)
	put, err := c.cubbyhole(st).Put(ctx, mac, wrappedPath, plain, now)
	if err != nil {
		return nil, err
	}
	created := enginetoken.CreatedEvent(tokenview.CreatedPayload{
		MAC: mac, Accessor: accessor, Policies: []string{wrappingPolicy}, Orphan: true, Path: creationPath,
		CreationTime: now, TTL: ttl, ExplicitMaxTTL: ttl, NumUses: 1, Type: "service", ExpireTime: now.Add(ttl),
	}, "")
	if err := c.commit(ctx, st, append([]ledger.Event{created, put}, extra...)); err != nil {
		return nil, fmt.Errorf("store wrapped response: %w", err)
	}
	return &engines.WrapInfo{Token: tok, Accessor: accessor, TTL: ttl, CreationTime: now, CreationPath: creationPath}, nil
}

// wrappingEndpoint serves sys/wrapping/lookup (no authentication), unwrap and rewrap. The
// wrapping token comes in the body ("token") or as the request's own token; when both are given
// and differ, the request's token must be allowed on the endpoint by its policies.
func (c *Core) wrappingEndpoint(ctx context.Context, st *unsealed, r *Request, trail *auditTrail, op string) (*engines.Response, error) {
	now := time.Now().UTC()
	req := &engines.Request{ID: r.ID, Op: r.Op, Path: strings.TrimPrefix(r.Path, "sys/"), Mount: engines.Mount{Path: "sys/", Type: "system"},
		Data: r.Data, RemoteAddr: r.RemoteAddr, Now: now}
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	trail.req, trail.mountType = req, "system"
	// These endpoints authenticate with the wrapping token they are given, which may be in the
	// body: the body is decoded first (within the listener's limits).
	if err := decodeBody(r, req); err != nil {
		return nil, err
	}
	if r.Op != engines.OpUpdate && r.Op != engines.OpCreate && !(op == "lookup" && r.Op == engines.OpRead) {
		return nil, engines.ErrUnsupported
	}
	var warnings []string
	if unknown := engines.Unknown(r.Data, "token"); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	wt, err := engines.String(r.Data, "token", "")
	if err != nil {
		return nil, err
	}
	wt = strings.TrimSpace(wt)
	if wt != "" && r.Token == "" && op != "lookup" {
		// A wrapping token in the body is presented by someone, who must be authenticated.
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	if wt != "" && r.Token != "" && wt != r.Token && op != "lookup" {
		entry, err := st.authenticate(r.Token, r.RemoteAddr, now)
		if err != nil {
			return nil, err
		}
		req.Caller = callerOf(entry, now)
		if d := c.aclFor(st, entry.Policies).Allowed(acl.Update, r.Path, nil); !d.Allowed {
			return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
		}
	}
	if wt == "" {
		wt = r.Token
	}
	if wt == "" || len(wt) > 512 {
		return nil, errWrappingToken
	}
	mac := st.keyring.Load().MAC("token", wt)
	// One unwrap, lookup or rewrap of a token at a time on this node, from the check to the
	// applied event, so a token cannot be unwrapped twice.
	defer st.locks.lock("wrapping\x00" + mac)()
	e, ok := st.tokens.ByMAC(mac)
	if !ok || e.Expired(now) || !slices.Equal(e.Policies, []string{wrappingPolicy}) {
		if u, was := st.cubby.WasUnwrapped(mac); was {
			c.logger.Warn("a used wrapping token was presented again: possible interception of the wrapped response",
				"accessor", u.Accessor, "unwrapped_at", u.Time, "remote_addr", r.RemoteAddr)
			return nil, interceptedError{unwrapped: u.Time}
		}
		return nil, errWrappingToken
	}
	if req.Caller == nil && wt == r.Token {
		req.Caller = callerOf(e, now)
	}
	if op == "lookup" {
		return &engines.Response{Data: map[string]any{
			"creation_path": e.Path, "creation_time": e.CreationTime.UTC().Format(time.RFC3339Nano),
			"creation_ttl": int64(e.CreationTTL / time.Second),
		}, Warnings: warnings}, nil
	}
	cb := c.cubbyhole(st)
	plain, ok, err := cb.Open(ctx, mac, wrappedPath)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errWrappingToken
	}
	defer clear(plain)
	consumed := []ledger.Event{
		enginetoken.RevokedEvent(mac, op+"ped", true),
		unwrappedEvent(cubbyview.UnwrappedPayload{Token: mac, Accessor: e.Accessor, Time: now, Until: e.ExpireTime, Shred: st.cubby.KeyIDs(mac)}),
	}
	if op == "rewrap" {
		info, err := c.newWrappingToken(ctx, st, e.Path, plain, e.CreationTTL, now, consumed...)
		if err != nil {
			return nil, err
		}
		if err := cb.Shred(ctx, consumed); err != nil {
			c.logger.Error("shred the data key of a rewrapped response; reconcile retries", "err", err)
		}
		return &engines.Response{WrapInfo: info}, nil
	}
	var w wrappedResponse
	dec := json.NewDecoder(bytes.NewReader(plain))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode wrapped response: %w", ledger.ErrCorrupt)
	}
	resp := &engines.Response{Data: w.Data, Warnings: append(w.Warnings, warnings...), Auth: w.Auth}
	if w.LeaseID != "" {
		resp.Secret = &engines.Secret{LeaseID: w.LeaseID, LeaseDuration: w.LeaseDuration, Renewable: w.Renewable}
	}
	if resp.Data == nil && resp.Auth == nil && resp.Secret == nil {
		resp.Data = map[string]any{}
	}
	// The unwrap, its audit record and the end of the token land together.
	events := append(consumed, c.auditEvents(st, r, trail, resp)...)
	for i := range events {
		events[i].Request = r.ID
	}
	if err := c.commit(ctx, st, events); err != nil {
		return nil, fmt.Errorf("append: %w", err)
	}
	trail.committed = true
	if err := cb.Shred(ctx, consumed); err != nil {
		c.logger.Error("shred the data key of an unwrapped response; reconcile retries", "err", err)
	}
	return resp, nil
}

func unwrappedEvent(p cubbyview.UnwrappedPayload) ledger.Event {
	b, _ := json.Marshal(p)
	return ledger.Event{Type: cubbyview.Unwrapped, Subject: ledger.SubjectFor("cubbyhole", p.Token), Payload: b}
}

// wrapData serves sys/wrapping/wrap: the request's data is the response, which handleWrapped
// then wraps (it refuses the request without a wrap TTL before it gets here).
func wrapData(req *engines.Request) (*engines.Response, error) {
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	if len(req.Data) == 0 {
		return nil, engines.BadRequest("no data given to wrap")
	}
	data := make(map[string]any, len(req.Data))
	for k, v := range req.Data {
		data[k] = v
	}
	return &engines.Response{Data: data}, nil
}
