package commands

// Value fingerprints (issue 16): Ledger's own endpoint
//
//	POST sys/ledger/fingerprints/match   {"candidates": ["…", …]}   sudo
//
// answers which candidates are values Ledger wrote — a KV field, a static-role, root or issued
// database password, an AppRole secret ID — by their keyed fingerprint (ledger.Keyring.
// Fingerprint), with where each lives (mount, path, version, field, kind) and whether it is
// still live. It never returns a value. `ledger scan` is its client.
//
// Probing. Anyone who may call it can test guesses, so it is guarded three ways: sudo; a
// candidate shorter than MinCandidateBytes refuses the whole request (short secrets — PINs,
// four-letter passwords — could otherwise be enumerated one guess at a time); and each token
// may make matchBurst requests at once and matchRate a second after that (429 past it). Every
// request, refused or not, goes through the pipeline and so is audited, its candidates HMACed.

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ledger-secrets/ledger/engines"
	enginekv "github.com/ledger-secrets/ledger/engines/kv"
	"github.com/ledger-secrets/ledger/ledger"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
	"github.com/ledger-secrets/ledger/projections/mount"
)

const (
	// MinCandidateBytes is the shortest value fingerprints/match and incident accept.
	MinCandidateBytes = 8
	// MaxCandidates is the most candidates one match request may carry.
	MaxCandidates = 5000
	// maxCandidateBytes: longer strings are not secrets anyone stores; refusing them bounds work.
	maxCandidateBytes = 4096
	matchBurst        = 20
	matchRate         = 10 // requests per second per token, after the burst
)

// matchLimiter rate-limits fingerprint matching per token accessor.
type matchLimiter struct {
	mu sync.Mutex
	m  map[string]*rate.Limiter
}

func newMatchLimiter() *matchLimiter { return &matchLimiter{m: map[string]*rate.Limiter{}} }

func (l *matchLimiter) allow(accessor string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) > 10000 { // forget idle tokens rather than grow without bound
		for k, lim := range l.m {
			if lim.TokensAt(now) >= matchBurst {
				delete(l.m, k)
			}
		}
	}
	lim := l.m[accessor]
	if lim == nil {
		lim = rate.NewLimiter(matchRate, matchBurst)
		l.m[accessor] = lim
	}
	return lim.AllowN(now, 1)
}

// leakResponseRoutes describes the issue-16 sys paths.
func leakResponseRoutes() []engines.Route {
	return []engines.Route{
		{Pattern: "ledger/fingerprints/match", Operations: opsU, Summary: "Which candidate strings are values Ledger wrote (by keyed fingerprint); never returns a value.",
			Fields: []engines.Field{{Name: "candidates", Type: "[]string", Description: fmt.Sprintf("Strings to test, %d to %d bytes each, at most %d.", MinCandidateBytes, maxCandidateBytes, MaxCandidates)}}},
		{Pattern: "ledger/fingerprints/status", Operations: opsR, Summary: "How many fingerprints are recorded and how far the backfill went."},
		{Pattern: "ledger/incident", Operations: opsU, Summary: "Who wrote and read a leaked value or secret, what they hold now and what else they touched.",
			Fields: []engines.Field{
				{Name: "value", Type: "string", Description: "The leaked value."},
				{Name: "path", Type: "string", Description: "Or the API path of the secret (secret/data/app/db, database/static-creds/app)."},
				{Name: "version", Type: "int", Description: "With path: the version (default: every version)."},
				{Name: "since", Type: "string", Description: "Only audit records from this time (RFC 3339) or this long ago (72h)."}}},
	}
}

// requireSudo refuses a caller without sudo on sys/<p>.
func (s *sysBackend) requireSudo(req *engines.Request, p string) error {
	if req.Caller == nil {
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	a := s.c.aclForCaller(s.st, req.Caller)
	if !a.IsRoot() && !a.Allowed(aclOp(req.Op), "sys/"+p, req.Data).Sudo {
		return engines.Errorf(engines.ErrPermissionDenied, "permission denied: sys/%s needs sudo", p)
	}
	return nil
}

// fingerprintPaths serves sys/ledger/fingerprints/.
func (s *sysBackend) fingerprintPaths(req *engines.Request, p string) (*engines.Response, error) {
	if err := s.requireSudo(req, "ledger/fingerprints/"+p); err != nil {
		return nil, err
	}
	switch {
	case p == "match" && isWrite(req.Op):
		return s.fingerprintMatch(req)
	case p == "status" && req.Op == engines.OpRead:
		bf := s.st.fingerprints.Backfill()
		return &engines.Response{Data: map[string]any{
			"fingerprints": s.st.fingerprints.Len(), "backfill_done": bf.Done, "backfilled": bf.Count,
			"min_candidate_bytes": MinCandidateBytes, "max_candidates": MaxCandidates,
		}}, nil
	case p == "match" || p == "status":
		return nil, engines.ErrUnsupported
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: use match or status", "sys/ledger/fingerprints/"+p)
}

func (s *sysBackend) fingerprintMatch(req *engines.Request) (*engines.Response, error) {
	if !s.st.fpMatch.allow(req.Caller.Accessor, time.Now()) {
		return nil, engines.Errorf(engines.ErrRateLimited, "fingerprint matching is limited to %d requests a second per token (burst %d): wait and retry, and send up to %d candidates per request", matchRate, matchBurst, MaxCandidates)
	}
	cands, err := engines.Strings(req.Data, "candidates")
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return nil, engines.BadRequest("missing candidates: send {\"candidates\": [\"…\"]}")
	}
	if len(cands) > MaxCandidates {
		return nil, engines.BadRequest("%d candidates: at most %d per request; split them", len(cands), MaxCandidates)
	}
	for i, c := range cands {
		if err := checkCandidate(c); err != nil {
			return nil, engines.BadRequest("candidate %d: %s", i, err)
		}
	}
	kr := s.st.keyring.Load()
	matches := []map[string]any{}
	for i, c := range cands {
		for _, l := range s.st.fingerprints.Lookup(kr.Fingerprint([]byte(c))) {
			m := s.locationJSON(l)
			m["candidate"] = i
			matches = append(matches, m)
		}
	}
	return &engines.Response{Data: map[string]any{"matches": matches, "checked": len(cands)}}, nil
}

// checkCandidate refuses what matching must not take; the message never repeats the value.
func checkCandidate(c string) error {
	switch {
	case len(c) < MinCandidateBytes:
		return fmt.Errorf("is %d bytes; values shorter than %d bytes are refused, since matching them would let a caller probe for short secrets one guess at a time", len(c), MinCandidateBytes)
	case len(c) > maxCandidateBytes:
		return fmt.Errorf("is %d bytes; the longest value matched is %d bytes", len(c), maxCandidateBytes)
	}
	return nil
}

// mountByUUID finds a mount by UUID; ok is false once it was disabled.
func (s *sysBackend) mountByUUID(uuid string) (mount.Entry, bool) {
	for _, m := range s.st.mounts.List() {
		if m.UUID == uuid {
			return m, true
		}
	}
	return mount.Entry{}, false
}

// locationJSON describes where a fingerprint was recorded, by the mount's path as it is now.
// secret_path is the API path that names the secret; read_path the one whose reads return it.
func (s *sysBackend) locationJSON(l fpview.Location) map[string]any {
	secretPath, readPath := "", ""
	mp := "(disabled mount " + l.Mount + ")/"
	m, ok := s.mountByUUID(l.Mount)
	if ok {
		mp = m.Path
	}
	switch l.Kind {
	case fpview.KindKV:
		secretPath, readPath = mp+"data/"+l.Path, mp+"data/"+l.Path
	case fpview.KindStaticRole:
		name := trimPrefix(l.Path, "static-roles/")
		secretPath, readPath = mp+l.Path, mp+"static-creds/"+name
	case fpview.KindSecretID:
		secretPath, readPath = mp+l.Path, mp+l.Path
	default:
		secretPath, readPath = mp+l.Path, mp+l.Path
	}
	out := map[string]any{
		"kind": l.Kind, "mount": mp, "path": l.Path, "secret_path": secretPath, "read_path": readPath,
		"version": l.Version, "field": l.Field, "state": l.State, "live": l.Live(),
		"written": l.Written.UTC().Format(time.RFC3339Nano), "written_by": l.Actor, "request_id": l.Request,
		"backfilled": l.Backfill,
	}
	if l.Accessor != "" {
		out["secret_id_accessor"] = l.Accessor
	}
	if l.Kind == fpview.KindCreds {
		out["username"] = l.Ref
	}
	return out
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

// --- backfill ---

// backfillChunk is how many paths one progress event covers.
const backfillChunk = 200

// backfillFingerprints records, once, the fingerprints of values written before fingerprints
// existed: every KV version still holding its value, every static role's current password.
// It walks mounts and paths in sorted order; a progress event after each chunk records the
// last path done, so a restart resumes there, and a path whose values have fingerprints is
// skipped, so running it twice adds nothing. Each path is decided and committed under the same
// lock a write to it takes. Only the node that appends runs it (like expiration and rotation).
func (c *Core) backfillFingerprints(ctx context.Context, st *unsealed) {
	if err := st.runner.WaitReady(ctx); err != nil {
		return // sealed, or the view failed to load and the node seals (restoreLate)
	}
	if st.fingerprints.Backfill().Done {
		return
	}
	if err := c.runBackfill(ctx, st); err != nil && ctx.Err() == nil {
		c.logger.Error("fingerprint backfill stopped; it resumes at the next unseal", "err", err)
	}
}

func (c *Core) runBackfill(ctx context.Context, st *unsealed) error {
	prog := st.fingerprints.Backfill()
	count, sinceMark := prog.Count, 0
	cursor := prog.Cursor
	mark := func(done bool) error {
		if sinceMark == 0 && !done {
			return nil
		}
		b, err := json.Marshal(fpview.BackfillPayload{Cursor: cursor, Done: done, Count: count})
		if err != nil {
			return err
		}
		sinceMark = 0
		return c.commit(ctx, st, []ledger.Event{{Type: fpview.BackfillProgressed, Subject: fpview.Subject, Payload: b}})
	}
	mounts := st.mounts.List()
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].UUID < mounts[j].UUID })
	for _, m := range mounts {
		var paths []string
		var decide func(path string) ([]ledger.Event, error)
		switch m.Type {
		case "kv":
			b, err := c.backend(st, m)
			if err != nil {
				return err
			}
			kb, ok := b.(*enginekv.Backend)
			if !ok {
				continue
			}
			paths = st.kv.Paths(m.UUID)
			decide = func(path string) ([]ledger.Event, error) {
				return kb.BackfillEvents(ctx, st.fingerprints, path, time.Now())
			}
		case "database":
			for _, name := range st.database.StaticRoles(m.UUID) {
				paths = append(paths, "static-roles/"+name)
			}
			sort.Strings(paths)
			kr := st.keyring.Load()
			decide = func(path string) ([]ledger.Event, error) {
				r, ok := st.database.StaticRole(m.UUID, trimPrefix(path, "static-roles/"))
				if !ok || r.Password == "" || st.fingerprints.Has(fpview.KindStaticRole, m.UUID, path, r.Generation) {
					return nil, nil
				}
				ev, err := fpview.Event(fpview.RecordedPayload{Kind: fpview.KindStaticRole, Mount: m.UUID, Path: path,
					Version: r.Generation, Time: r.LastRotation, Backfilled: true,
					Fields: map[string]string{"password": kr.Fingerprint([]byte(r.Password))}}, "", "", time.Now())
				if err != nil {
					return nil, err
				}
				return []ledger.Event{ev}, nil
			}
		default:
			continue
		}
		for _, path := range paths {
			key := m.UUID + "\x00" + path
			if key <= cursor {
				continue
			}
			// The lock a request on the path takes (the engines' LockKey: the KV path, and
			// "static-roles/<name>" for a static role).
			unlock := st.locks.lock(m.UUID + "\x00" + path)
			evs, err := decide(path)
			if err == nil && len(evs) > 0 {
				err = c.commit(ctx, st, evs)
			}
			unlock()
			if err != nil {
				return fmt.Errorf("backfill %s%s: %w", m.Path, path, err)
			}
			if len(evs) > 0 {
				count += len(evs)
				sinceMark++
			}
			cursor = key
			if sinceMark >= backfillChunk {
				if err := mark(false); err != nil {
					return err
				}
			}
		}
	}
	if count == prog.Count {
		return nil // nothing was missing: no event (a fresh server stays as it was)
	}
	if err := mark(true); err != nil {
		return err
	}
	c.logger.Info("fingerprint backfill done", "values", count)
	return nil
}
