package commands

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/activity"
	corsview "github.com/ledger-secrets/ledger/projections/cors"
	pwpolicyview "github.com/ledger-secrets/ledger/projections/passwordpolicy"
	"github.com/ledger-secrets/ledger/projections/quota"
)

// The small sys endpoints clients read (tools, host-info, version-history, in-flight-req,
// loggers, the plugin catalog, password policies, quotas, CORS, activity counters). Each lives
// in its own file; miscPaths is the one hook sysBackend.HandleRequest calls for all of them.

// miscState is what those endpoints keep on the Core across unseals: it is per node and in
// memory, as Vault keeps it (in-flight requests, the run-time log level, rate-limit buckets).
type miscState struct {
	inflight sync.Map // request id → inFlight

	levelOnce sync.Once
	baseLevel slog.Level // the configured level, which DELETE sys/loggers restores

	quotasOnce sync.Once
	buckets    *quotaBuckets // rate-limit quota counters (quota_limiter.go)

	cors atomic.Pointer[corsview.Config] // last CORS configuration seen unsealed (cors.go)

	leaseQuotaLocks sync.Map // lease-count quota name → *sync.Mutex (quotas.go)

	raft raftTracker // addresses and stability of the cluster's nodes (raft.go)
}

// leaseQuotaLock locks the lease-count quota called name and returns its unlock.
func (m *miscState) leaseQuotaLock(name string) func() {
	v, _ := m.leaseQuotaLocks.LoadOrStore(name, new(sync.Mutex))
	mu := v.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// sysViews are the views behind those endpoints, folded by the unsealed state's runner like
// every other view (snapshots, digests, replay).
type sysViews struct {
	pwpolicy *pwpolicyview.View
	quota    *quota.View
	cors     *corsview.View
	activity *activity.View
}

func newSysViews() sysViews {
	return sysViews{pwpolicy: pwpolicyview.New(), quota: quota.New(), cors: corsview.New(), activity: activity.New()}
}

func (v sysViews) views() []projections.View {
	return []projections.View{v.pwpolicy, v.quota, v.cors, v.activity}
}

// miscPaths serves the paths above; handled is false for any other path.
func (s *sysBackend) miscPaths(ctx context.Context, req *engines.Request, p string) (resp *engines.Response, handled bool, err error) {
	under := func(prefix string) (string, bool) {
		if p == prefix {
			return "", true
		}
		rest, ok := strings.CutPrefix(p, prefix+"/")
		return rest, ok
	}
	if rest, ok := under("tools/random"); ok {
		resp, err = s.random(req, rest)
		return resp, true, err
	}
	if rest, ok := under("tools/hash"); ok {
		resp, err = s.hash(req, rest)
		return resp, true, err
	}
	if rest, ok := under("loggers"); ok {
		resp, err = s.loggers(req, rest)
		return resp, true, err
	}
	if rest, ok := under("policies/password"); ok {
		resp, err = s.passwordPolicies(ctx, req, rest)
		return resp, true, err
	}
	if rest, ok := under("quotas"); ok {
		resp, err = s.quotaPaths(req, rest)
		return resp, true, err
	}
	if rest, ok := under("plugins/catalog"); ok {
		resp, err = s.pluginCatalog(req, rest)
		return resp, true, err
	}
	switch p {
	case "internal/counters/activity":
		resp, err = s.activityCounts(req)
		return resp, true, err
	case "config/cors":
		resp, err = s.corsPath(req)
		return resp, true, err
	case "host-info":
		resp, err = s.hostInfo(ctx, req)
		return resp, true, err
	case "version-history":
		resp, err = s.versionHistory(req)
		return resp, true, err
	case "in-flight-req":
		resp, err = s.inFlightRequests(req)
		return resp, true, err
	}
	return nil, false, nil
}

// inFlight is one request being served, as sys/in-flight-req shows it.
type inFlight struct {
	StartTime     time.Time `json:"start_time"`
	ClientAddress string    `json:"client_remote_address"`
	RequestPath   string    `json:"request_path"`
	Method        string    `json:"request_method"`
	ClientID      string    `json:"client_id"`
}

// TrackRequest records a request as in flight until the returned function is called. The HTTP
// edge calls it for every API request it routes through the pipeline.
func (c *Core) TrackRequest(id, method, path, remote string) func() {
	c.misc.inflight.Store(id, inFlight{StartTime: time.Now(), ClientAddress: remote, RequestPath: path, Method: method})
	return func() { c.misc.inflight.Delete(id) }
}

// Raw response keys, as Vault's logical.HTTPRawBody & co: the HTTP edge writes http_raw_body
// as the whole body instead of the JSON envelope.
const (
	RawBody        = "http_raw_body"
	RawContentType = "http_content_type"
	RawStatusCode  = "http_status_code"
)

func (s *sysBackend) inFlightRequests(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	all := map[string]inFlight{}
	s.c.misc.inflight.Range(func(k, v any) bool {
		all[k.(string)] = v.(inFlight)
		return true
	})
	// Vault answers this one without the envelope: the map of request id → request.
	return &engines.Response{Data: map[string]any{RawBody: all, RawContentType: "application/json", RawStatusCode: 200}}, nil
}
