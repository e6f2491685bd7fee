package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/quota"
)

// Resource quotas: sys/quotas/config, sys/quotas/rate-limit/:name, sys/quotas/lease-count/:name,
// and their enforcement (quotaGate) in front of the pipeline.

// quotaPaths serves sys/quotas/….
func (s *sysBackend) quotaPaths(req *engines.Request, rest string) (*engines.Response, error) {
	if rest == "config" {
		return s.quotaConfig(req)
	}
	typ, name, _ := strings.Cut(rest, "/")
	if typ != quota.TypeRateLimit && typ != quota.TypeLeaseCount {
		return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/quotas/"+rest)
	}
	view := s.st.sysv.quota
	if name == "" {
		if req.Op != engines.OpList && req.Op != engines.OpRead {
			return nil, engines.ErrUnsupported
		}
		return &engines.Response{Data: map[string]any{"keys": view.Names(typ)}}, nil
	}
	if !genericNameRE.MatchString(name) || len(name) > 128 {
		return nil, engines.BadRequest("invalid quota name %q: use letters, digits, '_', '-' and '.'", name)
	}
	switch req.Op {
	case engines.OpRead:
		q, ok := view.Get(typ, name)
		if !ok {
			return nil, engines.Errorf(engines.ErrNotFound, "%s quota %q not found", typ, name)
		}
		return &engines.Response{Data: s.quotaData(q)}, nil
	case engines.OpCreate, engines.OpUpdate:
		q, err := s.parseQuota(req, typ, name)
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(q)
		return &engines.Response{Events: []ledger.Event{{Type: quota.Written, Subject: ledger.SubjectFor("quota", typ+"/"+name), Payload: b}}}, nil
	case engines.OpDelete:
		if _, ok := view.Get(typ, name); !ok {
			return nil, nil
		}
		b, _ := json.Marshal(quota.DeletedPayload{Type: typ, Name: name})
		return &engines.Response{Events: []ledger.Event{{Type: quota.Deleted, Subject: ledger.SubjectFor("quota", typ+"/"+name), Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

func (s *sysBackend) quotaData(q quota.Quota) map[string]any {
	d := map[string]any{"type": q.Type, "name": q.Name, "path": q.Path(), "role": q.Role, "inheritable": q.Inheritable}
	if q.Type == quota.TypeRateLimit {
		d["rate"] = q.Rate
		d["interval"] = int64(q.Interval / time.Second)
		d["block_interval"] = int64(q.BlockInterval / time.Second)
	} else {
		d["max_leases"] = q.MaxLeases
		d["counter"] = s.c.leaseCount(s.st, q, time.Now())
	}
	return d
}

// parseQuota validates a quota write against the mounts and the other quotas.
func (s *sysBackend) parseQuota(req *engines.Request, typ, name string) (quota.Quota, error) {
	if t, err := engines.String(req.Data, "type", typ); err != nil {
		return quota.Quota{}, err
	} else if t != typ {
		return quota.Quota{}, engines.BadRequest("field \"type\" is %q but the path is sys/quotas/%s", t, typ)
	}
	q := quota.Quota{Type: typ, Name: name}
	var err error
	if typ == quota.TypeRateLimit {
		if q.Rate, err = floatField(req.Data, "rate"); err != nil {
			return q, err
		}
		if q.Rate <= 0 || math.IsInf(q.Rate, 0) || math.IsNaN(q.Rate) || q.Rate > 1e9 {
			return q, engines.BadRequest("'rate' is invalid: it must be a positive number of requests per interval")
		}
		if q.Interval, err = engines.NonNegativeDuration(req.Data, "interval"); err != nil {
			return q, err
		}
		if q.Interval == 0 {
			q.Interval = time.Second
		}
		if q.BlockInterval, err = engines.NonNegativeDuration(req.Data, "block_interval"); err != nil {
			return q, err
		}
	} else {
		if !engines.Has(req.Data, "max_leases") {
			return q, engines.BadRequest("field \"max_leases\" is required: the most live leases the quota allows")
		}
		if q.MaxLeases, err = engines.Int(req.Data, "max_leases", 0); err != nil {
			return q, err
		}
		if q.MaxLeases <= 0 {
			return q, engines.BadRequest("'max_leases' is invalid: it must be a positive integer")
		}
	}
	path, err := engines.String(req.Data, "path", "")
	if err != nil {
		return q, err
	}
	if q.Role, err = engines.String(req.Data, "role", ""); err != nil {
		return q, err
	}
	path = strings.TrimLeft(path, "/")
	if path != "" {
		if err := ValidatePath(path); err != nil {
			return q, engines.BadRequest("invalid path %q: %s", path, err.Error())
		}
		if !strings.HasSuffix(path, "/") {
			path += "/"
		}
		m, ok := s.quotaMount(path)
		if !ok {
			return q, engines.BadRequest("invalid mount path %q: no secrets engine or auth method is mounted there", path)
		}
		q.MountPath = m.Path
		q.PathSuffix = strings.TrimSuffix(strings.TrimPrefix(path, m.Path), "/")
		if q.Role != "" {
			if q.PathSuffix != "" {
				return q, engines.BadRequest("Quotas cannot contain both a path suffix and a role. If a role is provided, path must be a valid auth mount with a concept of roles")
			}
			if !m.IsAuth() || !roleMountTypes[m.Type] {
				return q, engines.BadRequest("Mount path %q is not a valid auth method with roles and therefore unsuitable for use with role-based quotas", m.Path)
			}
		}
	} else if q.Role != "" {
		return q, engines.BadRequest("a role-based quota needs the path of an auth method with roles")
	}
	q.Inheritable = q.MountPath == "" // Vault: a global quota is inheritable by default
	if engines.Has(req.Data, "inheritable") {
		if q.Inheritable, err = engines.Bool(req.Data, "inheritable", false); err != nil {
			return q, err
		}
	}
	for _, o := range s.st.sysv.quota.All(typ) {
		if o.Name != name && o.MountPath == q.MountPath && o.PathSuffix == q.PathSuffix && o.Role == q.Role {
			return q, engines.BadRequest("quota rule with similar properties exists under the name %q", o.Name)
		}
	}
	return q, nil
}

// roleMountTypes are the auth methods whose logins name a role (see loginRole).
var roleMountTypes = map[string]bool{"approle": true, "userpass": true, "kubernetes": true}

// quotaMount is the mount a quota path or request path falls under; sys/ counts as a mount.
func (s *sysBackend) quotaMount(path string) (quotaMountEntry, bool) {
	return matchQuotaMount(s.st, path)
}

type quotaMountEntry struct {
	Path, Type, UUID string
}

func (m quotaMountEntry) IsAuth() bool { return strings.HasPrefix(m.Path, "auth/") }

func matchQuotaMount(st *unsealed, path string) (quotaMountEntry, bool) {
	if path == "sys" || strings.HasPrefix(path, "sys/") {
		return quotaMountEntry{Path: "sys/", Type: "system"}, true
	}
	m, ok := st.mounts.Match(path)
	if !ok {
		return quotaMountEntry{}, false
	}
	return quotaMountEntry{Path: m.Path, Type: m.Type, UUID: m.UUID}, true
}

func floatField(data map[string]any, key string) (float64, error) {
	v, ok := data[key]
	if !ok || v == nil {
		return 0, engines.BadRequest("field %q is required", key)
	}
	bad := engines.BadRequest("field %q: expected a number", key)
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return 0, bad
		}
		return f, nil
	case float64:
		return t, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		if err != nil {
			return 0, bad
		}
		return f, nil
	}
	return 0, bad
}

func (s *sysBackend) quotaConfig(req *engines.Request) (*engines.Response, error) {
	switch req.Op {
	case engines.OpRead:
		c := s.st.sysv.quota.Config()
		return &engines.Response{Data: map[string]any{
			"enable_rate_limit_audit_logging":    c.EnableRateLimitAuditLogging,
			"enable_rate_limit_response_headers": c.EnableRateLimitResponseHeaders,
			"rate_limit_exempt_paths":            c.RateLimitExemptPaths,
		}}, nil
	case engines.OpCreate, engines.OpUpdate:
		var c quota.Config
		var err error
		if c.EnableRateLimitAuditLogging, err = engines.Bool(req.Data, "enable_rate_limit_audit_logging", false); err != nil {
			return nil, err
		}
		if c.EnableRateLimitResponseHeaders, err = engines.Bool(req.Data, "enable_rate_limit_response_headers", false); err != nil {
			return nil, err
		}
		if c.RateLimitExemptPaths, err = engines.Strings(req.Data, "rate_limit_exempt_paths"); err != nil {
			return nil, err
		}
		for i, p := range c.RateLimitExemptPaths {
			c.RateLimitExemptPaths[i] = strings.TrimLeft(strings.TrimSpace(p), "/")
			if c.RateLimitExemptPaths[i] == "" {
				return nil, engines.BadRequest("rate_limit_exempt_paths: an empty path would exempt nothing; remove it")
			}
		}
		if c.RateLimitExemptPaths == nil {
			c.RateLimitExemptPaths = []string{}
		}
		b, _ := json.Marshal(c)
		return &engines.Response{Events: []ledger.Event{{Type: quota.ConfigWritten, Subject: ledger.SubjectFor("quota", "config"), Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

// --- Enforcement -------------------------------------------------------------------------------

// RateLimitedError is a request refused by a quota; Headers are what the HTTP edge adds.
type RateLimitedError struct {
	msg string
}

func (e *RateLimitedError) Error() string { return e.msg }
func (e *RateLimitedError) Unwrap() error { return engines.ErrRateLimited }

// quotaGate applies the quotas to a request and runs it through the pipeline (response wrapping
// included) if they allow it.
// A rate-limited request is refused before anything else (authentication included), as Vault
// refuses it at the HTTP edge; it is audited only with enable_rate_limit_audit_logging.
func (c *Core) quotaGate(ctx context.Context, st *unsealed, r *Request, trail *auditTrail) (*engines.Response, func(), error) {
	view := st.sysv.quota
	rateQuotas, leaseQuotas := view.All(quota.TypeRateLimit), view.All(quota.TypeLeaseCount)
	if len(rateQuotas) == 0 && len(leaseQuotas) == 0 {
		return c.handleWrapped(ctx, st, r, trail)
	}
	now := time.Now()
	m, _ := matchQuotaMount(st, r.Path)
	rel := strings.TrimPrefix(r.Path, m.Path)
	if m.Path != "" && r.Path+"/" == m.Path {
		rel = ""
	}
	role := func() string { return c.loginRole(st, m, rel, r) }
	cfg := view.Config()
	if q, ok := pickQuota(rateQuotas, m, rel, role); ok && !exemptPath(cfg.RateLimitExemptPaths, r.Path) {
		res := c.misc.rateLimiter().take(q, clientKey(r.RemoteAddr), now)
		if cfg.EnableRateLimitResponseHeaders {
			reportRateLimit(ctx, res)
		}
		if !res.allowed {
			trail.committed = !cfg.EnableRateLimitAuditLogging // committed: no audit record
			return nil, nil, &RateLimitedError{msg: fmt.Sprintf("request path %q: rate limit quota exceeded", r.Path)}
		}
	}
	if r.Op != engines.OpList && r.Op != engines.OpDelete {
		if q, ok := pickQuota(leaseQuotas, m, rel, role); ok {
			// Count and issue under one lock, so concurrent requests cannot overshoot. Not a
			// stripe of st.locks: the request takes those further in, and a stripe is not
			// reentrant, so sharing one would deadlock.
			defer c.misc.leaseQuotaLock(q.Name)()
			if c.leaseCount(st, q, now) >= q.MaxLeases {
				return nil, nil, &RateLimitedError{msg: fmt.Sprintf("request path %q: lease count quota exceeded", r.Path)}
			}
		}
	}
	return c.handleWrapped(ctx, st, r, trail)
}

// pickQuota chooses the one quota that governs a request, most specific first, as Vault does:
// the longest matching path suffix on the mount, then the mount's quota for the login's role,
// then the mount's own quota, then the global one.
func pickQuota(qs []quota.Quota, m quotaMountEntry, rel string, role func() string) (quota.Quota, bool) {
	var best *quota.Quota
	for i := range qs {
		q := &qs[i]
		if q.MountPath == "" || q.MountPath != m.Path || q.PathSuffix == "" {
			continue
		}
		if rel == q.PathSuffix || strings.HasPrefix(rel, q.PathSuffix+"/") ||
			(strings.HasSuffix(q.PathSuffix, "*") && strings.HasPrefix(rel, strings.TrimSuffix(q.PathSuffix, "*"))) {
			if best == nil || len(q.PathSuffix) > len(best.PathSuffix) {
				best = q
			}
		}
	}
	if best != nil {
		return *best, true
	}
	hasRole := slices.ContainsFunc(qs, func(q quota.Quota) bool { return q.MountPath == m.Path && q.Role != "" })
	if hasRole && m.Path != "" {
		if r := role(); r != "" {
			for _, q := range qs {
				if q.MountPath == m.Path && q.PathSuffix == "" && q.Role == r {
					return q, true
				}
			}
		}
	}
	if m.Path != "" {
		for _, q := range qs {
			if q.MountPath == m.Path && q.PathSuffix == "" && q.Role == "" {
				return q, true
			}
		}
	}
	for _, q := range qs {
		if q.MountPath == "" {
			return q, true
		}
	}
	return quota.Quota{}, false
}

// exemptPath reports whether path is exempt from rate limits (exact, or a prefix ending in '*').
func exemptPath(exempt []string, path string) bool {
	for _, e := range exempt {
		if pre, ok := strings.CutSuffix(e, "*"); ok {
			if strings.HasPrefix(path, pre) {
				return true
			}
		} else if strings.TrimSuffix(e, "/") == strings.TrimSuffix(path, "/") {
			return true
		}
	}
	return false
}

// loginRole is the role a login request names, for role-based quotas: the AppRole role of the
// role_id, the userpass user, the Kubernetes role. Empty for anything else.
func (c *Core) loginRole(st *unsealed, m quotaMountEntry, rel string, r *Request) string {
	if !m.IsAuth() || (rel != "login" && !strings.HasPrefix(rel, "login/")) {
		return ""
	}
	switch m.Type {
	case "approle":
		id, _ := r.Data["role_id"].(string)
		if role, ok := st.approle.RoleByRoleID(m.UUID, id); ok && id != "" {
			return role.Name
		}
	case "userpass":
		return strings.ToLower(strings.TrimPrefix(rel, "login/"))
	case "kubernetes":
		role, _ := r.Data["role"].(string)
		return role
	}
	return ""
}

// leaseCount counts what a lease-count quota limits: the live leases under its path and, on an
// auth method, the live tokens its logins issued (for a role quota, those of the role).
func (c *Core) leaseCount(st *unsealed, q quota.Quota, now time.Time) int {
	prefix := q.Path()
	// A lease past its expiry still counts until it is revoked: its credential works until then.
	n := len(st.leases.WithPrefix(prefix))
	if !strings.HasPrefix(q.MountPath, "auth/") && q.MountPath != "" {
		return n
	}
	for _, acc := range st.tokens.Accessors() {
		e, ok := st.tokens.ByAccessor(acc)
		if !ok || e.Expired(now) || !strings.HasPrefix(e.Path, prefix) {
			continue
		}
		if q.Role != "" && e.Meta["role_name"] != q.Role && e.Path != q.MountPath+"login/"+q.Role {
			continue
		}
		n++
	}
	return n
}

func clientKey(remote string) string {
	if h := engines.HostOf(remote); h != "" {
		return h
	}
	return remote
}
