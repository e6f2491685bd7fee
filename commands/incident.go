package commands

// Incident report (issue 16): Ledger's own endpoint
//
//	POST sys/ledger/incident  {"value": "…"} | {"path": "secret/data/app/db", "version": 2}, "since"   sudo
//
// answers, in one request, what `vault audit hash` plus jq over audit files answers by hand:
// which secret (and version) a leaked value is, when it was written and by whom, every request
// that returned it (time, accessor, entity, remote address, token policies), the tokens and
// leases those readers hold now, what else they touched since their first read, and the
// containment steps `ledger incident --contain` carries out (each its own audited request).
//
// How reads are found: audit records hold every sensitive string as its audit HMAC (Vault's
// hmac-sha256: format). The server HMACs the value — or, given a path, the fields of the
// version it can still open — and folds the audit trail once, keeping records whose response
// (a read, a credential issued) or request (a write, a login with it) carries that HMAC. A
// destroyed version cannot be opened any more: then reads of its read path between its write
// and the next version's are listed instead, marked by_path.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/engines"
	enginekv "github.com/ledger-secrets/ledger/engines/kv"
	fpview "github.com/ledger-secrets/ledger/projections/fingerprint"
)

// incidentTarget is one secret version the report is about.
type incidentTarget struct {
	loc    fpview.Location
	json   map[string]any
	hashes map[string]bool // audit HMACs of its value(s)
	from   time.Time       // by-path window, when there are no hashes
	until  time.Time
	reads  int
}

// TouchedPath is what one identity did to one path since it first read the value.
type TouchedPath struct {
	Operation string    `json:"operation"`
	Path      string    `json:"path"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// IncidentEvent is one request that returned (read, issued) or carried (written, used) the
// value, as the incident report lists it; `ledger incident` decodes the report into it.
type IncidentEvent struct {
	Time          time.Time `json:"time"`
	Kind          string    `json:"kind"` // read, issued, used, written, matched (by a scan)
	Operation     string    `json:"operation"`
	Path          string    `json:"path"`
	Accessor      string    `json:"accessor"`
	DisplayName   string    `json:"display_name,omitempty"`
	EntityID      string    `json:"entity_id,omitempty"`
	RemoteAddress string    `json:"remote_address,omitempty"`
	TokenPolicies []string  `json:"token_policies,omitempty"`
	RequestID     string    `json:"request_id"`
	LeaseID       string    `json:"lease_id,omitempty"`
	Target        int       `json:"target"`
	ByPath        bool      `json:"by_path,omitempty"`
}

func (s *sysBackend) incident(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if err := s.requireSudo(req, "ledger/incident"); err != nil {
		return nil, err
	}
	if !isWrite(req.Op) {
		return nil, engines.ErrUnsupported
	}
	value, err := engines.String(req.Data, "value", "")
	if err != nil {
		return nil, err
	}
	path, err := engines.String(req.Data, "path", "")
	if err != nil {
		return nil, err
	}
	version, err := engines.Int(req.Data, "version", 0)
	if err != nil {
		return nil, err
	}
	if version < 0 {
		return nil, engines.BadRequest("version must be 1 or more (0 or absent: every version)")
	}
	since, err := sinceParam(req.Data, time.Now())
	if err != nil {
		return nil, err
	}
	kr := s.st.keyring.Load()
	var targets []*incidentTarget
	switch {
	case value != "" && path != "":
		return nil, engines.BadRequest("give value or path, not both")
	case value != "":
		if err := checkCandidate(value); err != nil {
			return nil, engines.BadRequest("value %s", err)
		}
		h := audit.HMAC(kr, value)
		for _, l := range s.st.fingerprints.Lookup(kr.Fingerprint([]byte(value))) {
			targets = append(targets, &incidentTarget{loc: l, hashes: map[string]bool{h: true}})
		}
	case path != "":
		if targets, err = s.pathTargets(ctx, strings.Trim(path, "/"), uint64(version)); err != nil {
			return nil, err
		}
	default:
		return nil, engines.BadRequest("missing value or path: send {\"value\": \"…\"} or {\"path\": \"secret/data/app/db\"}")
	}
	out := map[string]any{"found": len(targets) > 0, "generated_at": time.Now().UTC().Format(time.RFC3339Nano)}
	if !since.IsZero() {
		out["since"] = since.UTC().Format(time.RFC3339Nano)
	}
	if len(targets) == 0 {
		if value != "" {
			out["message"] = "the value matches no secret Ledger wrote (or its fingerprint predates the backfill)"
		} else {
			out["message"] = "no recorded value at that path"
		}
		return &engines.Response{Data: out}, nil
	}
	s.windows(targets)
	for i, t := range targets {
		t.json = s.locationJSON(t.loc)
		t.json["target"] = i
	}

	// One pass over the trail.
	var events []IncidentEvent
	touched := map[string]map[string]*TouchedPath{} // accessor → "op path" → activity
	writers := map[string]audit.Record{}            // request id → the write's record
	wantWrite := map[string]bool{}
	for _, t := range targets {
		if t.loc.Request != "" {
			wantWrite[t.loc.Request] = true
		}
	}
	scanned := 0
	reader := audit.Reader{JS: s.c.log.JetStream(), Keyring: kr}
	err = reader.Scan(ctx, since, func(_ audit.Position, r audit.Record) error {
		scanned++
		if r.Request == nil {
			return nil
		}
		acc := recordAccessor(r)
		if r.Request.Path == "sys/ledger/incident" {
			return nil // the investigation itself is not activity of the suspects
		}
		if acc != "" {
			m := touched[acc]
			if m == nil {
				m = map[string]*TouchedPath{}
				touched[acc] = m
			}
			k := r.Request.Operation + " " + r.Request.Path
			a := m[k]
			if a == nil {
				a = &TouchedPath{Operation: r.Request.Operation, Path: r.Request.Path, First: r.Time}
				m[k] = a
			}
			a.Count++
			a.Last = r.Time
		}
		if wantWrite[r.Request.ID] {
			writers[r.Request.ID] = r
		}
		if r.Error != "" {
			return nil
		}
		for i, t := range targets {
			kind, byPath := matchRecord(t, r)
			if kind == "" {
				continue
			}
			t.reads++
			ev := IncidentEvent{Time: r.Time, Kind: kind, Operation: r.Request.Operation, Path: r.Request.Path,
				Accessor: acc, RemoteAddress: r.Request.RemoteAddress, RequestID: r.Request.ID, Target: i, ByPath: byPath}
			if r.Auth != nil {
				ev.DisplayName, ev.EntityID, ev.TokenPolicies = r.Auth.DisplayName, r.Auth.EntityID, r.Auth.TokenPolicies
			}
			if r.Response != nil && r.Response.Secret != nil {
				ev.LeaseID = r.Response.Secret.LeaseID
			}
			events = append(events, ev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the audit trail: %w", err)
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })

	// Who wrote each target.
	tj := make([]map[string]any, len(targets))
	for i, t := range targets {
		if w, ok := writers[t.loc.Request]; ok {
			by := map[string]any{"accessor": recordAccessor(w), "remote_address": w.Request.RemoteAddress, "path": w.Request.Path}
			if w.Auth != nil {
				by["display_name"], by["entity_id"], by["token_policies"] = w.Auth.DisplayName, w.Auth.EntityID, w.Auth.TokenPolicies
			}
			t.json["writer"] = by
		}
		t.json["reads"] = t.reads
		tj[i] = t.json
	}

	// The readers: what they hold now and what else they touched since their first read.
	self := ""
	if req.Caller != nil {
		self = req.Caller.Accessor
	}
	first := map[string]time.Time{}
	var order []string
	for _, e := range events {
		if e.Kind == "written" || e.Kind == "matched" || e.Accessor == "" {
			continue
		}
		if _, ok := first[e.Accessor]; !ok {
			first[e.Accessor] = e.Time
			order = append(order, e.Accessor)
		}
	}
	readers := []map[string]any{}
	var revokeTokens, revokeLeases []string
	for _, acc := range order {
		rd := map[string]any{"accessor": acc, "first_read": first[acc].UTC().Format(time.RFC3339Nano), "self": acc == self}
		tok, live := s.st.tokens.ByAccessor(acc)
		live = live && !tok.Expired(time.Now())
		rd["token_live"] = live
		leases := []map[string]any{}
		if live {
			rd["display_name"], rd["entity_id"], rd["policies"] = tok.DisplayName, tok.EntityID, tok.Policies
			if tok.Expires() {
				rd["expire_time"] = tok.ExpireTime.UTC().Format(time.RFC3339Nano)
			}
			for _, id := range s.st.leases.ByToken(tok.MAC) {
				if le, ok := s.st.leases.Get(id); ok {
					leases = append(leases, map[string]any{"lease_id": id, "expire_time": le.ExpireTime.UTC().Format(time.RFC3339Nano)})
					if acc != self {
						revokeLeases = append(revokeLeases, id)
					}
				}
			}
			if acc != self && !isRootToken(tok.Policies) {
				revokeTokens = append(revokeTokens, acc)
			}
		}
		rd["leases"] = leases
		var acts []*TouchedPath
		for _, a := range touched[acc] {
			if !a.Last.Before(first[acc]) {
				acts = append(acts, a)
			}
		}
		sort.Slice(acts, func(i, j int) bool {
			if !acts[i].First.Equal(acts[j].First) {
				return acts[i].First.Before(acts[j].First)
			}
			return acts[i].Operation+acts[i].Path < acts[j].Operation+acts[j].Path
		})
		rd["touched_since"] = acts
		readers = append(readers, rd)
	}
	for _, e := range events {
		if e.LeaseID != "" && e.Kind == "issued" {
			if _, ok := s.st.leases.Get(e.LeaseID); ok && !contains(revokeLeases, e.LeaseID) {
				revokeLeases = append(revokeLeases, e.LeaseID)
			}
		}
	}
	out["targets"] = tj
	out["events"] = events
	out["readers"] = readers
	out["scanned_records"] = scanned
	out["contain"] = s.containPlan(targets, revokeTokens, revokeLeases)
	return &engines.Response{Data: out}, nil
}

func isRootToken(policies []string) bool { return contains(policies, "root") }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// recordAccessor is the accessor of the token that made the request.
func recordAccessor(r audit.Record) string {
	if r.Auth != nil && r.Auth.Accessor != "" {
		return r.Auth.Accessor
	}
	if r.Request != nil {
		return r.Request.ClientTokenAccessor
	}
	return ""
}

// matchRecord says whether an audit record returned (read, issued) or carried (written, used)
// the target's value: by its audit HMAC, or — for a version whose value is gone — by a read of
// its read path inside the version's window.
func matchRecord(t *incidentTarget, r audit.Record) (kind string, byPath bool) {
	if len(t.hashes) > 0 {
		if r.Response != nil && containsHash(r.Response.Data, t.hashes) {
			if r.Response.Secret != nil && r.Response.Secret.LeaseID != "" {
				return "issued", false
			}
			return "read", false
		}
		if containsHash(r.Request.Data, t.hashes) {
			if r.Request.Path == "sys/ledger/fingerprints/match" {
				return "matched", false // a scan checked it: a lead, not a reader
			}
			if r.Request.Operation == "read" {
				return "used", false
			}
			if r.Request.ID == t.loc.Request {
				return "written", false
			}
			return "used", false
		}
		return "", false
	}
	rp, _ := t.json["read_path"].(string)
	if r.Request.Operation == "read" && r.Request.Path == rp && !r.Time.Before(t.from) && (t.until.IsZero() || r.Time.Before(t.until)) {
		return "read", true
	}
	return "", false
}

// containsHash walks audit data for any of the HMACs.
func containsHash(v any, hashes map[string]bool) bool {
	switch x := v.(type) {
	case string:
		return strings.HasPrefix(x, audit.HMACPrefix) && hashes[x]
	case map[string]any:
		for _, e := range x {
			if containsHash(e, hashes) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if containsHash(e, hashes) {
				return true
			}
		}
	}
	return false
}

// windows sets each by-path target's window: from its write to the next version's.
func (s *sysBackend) windows(targets []*incidentTarget) {
	for _, t := range targets {
		if len(t.hashes) > 0 {
			continue
		}
		t.from = t.loc.Written
		for _, l := range s.st.fingerprints.Path(t.loc.Mount, t.loc.Path) {
			if l.Kind == t.loc.Kind && l.Version > t.loc.Version && (t.until.IsZero() || l.Written.Before(t.until)) {
				t.until = l.Written
			}
		}
	}
}

// pathTargets resolves an API path (and optional version) to its recorded values, one target
// per version, with the audit HMACs of the fields the server can still open.
func (s *sysBackend) pathTargets(ctx context.Context, p string, version uint64) ([]*incidentTarget, error) {
	m, ok := s.st.mounts.Match(p)
	if !ok {
		return nil, engines.BadRequest("no mount serves %q", p)
	}
	rest := strings.TrimPrefix(p, m.Path)
	var fpPath string
	switch m.Type {
	case "kv":
		fpPath = rest
		if m.Options["version"] == "2" {
			for _, e := range []string{"data/", "metadata/"} {
				if r, ok := strings.CutPrefix(rest, e); ok {
					fpPath = r
					break
				}
			}
		}
	case "database":
		for _, e := range []string{"static-creds/", "static-roles/", "rotate-role/"} {
			if r, ok := strings.CutPrefix(rest, e); ok {
				fpPath = "static-roles/" + r
			}
		}
		if fpPath == "" {
			return nil, engines.BadRequest("%q: give a static role's path (%sstatic-creds/<name>)", p, m.Path)
		}
	default:
		return nil, engines.BadRequest("%q is on a %s mount: incident by path covers KV secrets and database static roles; give the value instead", p, m.Type)
	}
	kr := s.st.keyring.Load()
	var out []*incidentTarget
	byVersion := map[uint64]*incidentTarget{}
	for _, l := range s.st.fingerprints.Path(m.UUID, fpPath) {
		if version != 0 && l.Version != version {
			continue
		}
		t := byVersion[l.Version]
		if t == nil {
			t = &incidentTarget{loc: l, hashes: map[string]bool{}}
			byVersion[l.Version] = t
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	for _, t := range out {
		t.loc.Field = "" // every field of the version
		switch m.Type {
		case "kv":
			b, err := s.c.backend(s.st, m)
			if err != nil {
				return nil, err
			}
			kb, ok := b.(*enginekv.Backend)
			if !ok {
				continue
			}
			val, ok, err := kb.VersionValue(ctx, fpPath, t.loc.Version)
			if err != nil && !errors.Is(err, enginekv.ErrValueGone) {
				return nil, err
			}
			if ok {
				addHashes(t.hashes, val, func(v string) string { return audit.HMAC(kr, v) })
			}
		case "database":
			r, ok := s.st.database.StaticRole(m.UUID, strings.TrimPrefix(fpPath, "static-roles/"))
			if ok && r.Generation == t.loc.Version && r.Password != "" {
				t.hashes[audit.HMAC(kr, r.Password)] = true
			}
		}
	}
	return out, nil
}

// addHashes adds the audit HMAC of every string leaf of a value.
func addHashes(dst map[string]bool, v any, h func(string) string) {
	switch x := v.(type) {
	case string:
		if len(x) >= MinCandidateBytes {
			dst[h(x)] = true
		}
	case map[string]any:
		for _, e := range x {
			addHashes(dst, e, h)
		}
	}
}

// containPlan lists the steps `ledger incident --contain` takes, in order: replace each live
// value (a new KV version, a rotation), then revoke the readers' tokens and leases.
func (s *sysBackend) containPlan(targets []*incidentTarget, tokens, leases []string) []map[string]any {
	steps := []map[string]any{}
	seen := map[string]bool{}
	for _, t := range targets {
		if !t.loc.Live() {
			continue
		}
		mp, _ := t.json["mount"].(string)
		var step map[string]any
		switch t.loc.Kind {
		case fpview.KindKV, fpview.KindKVv1:
			if !s.isCurrent(t.loc) {
				continue // an older version: a new version does not replace it; destroy it by hand
			}
			fields := []string{}
			if t.loc.Field != "" {
				fields = append(fields, t.loc.Field)
			}
			step = map[string]any{"action": "write-new-version", "path": t.json["secret_path"], "fields": fields, "kv_version": map[bool]int{true: 2, false: 1}[t.loc.Kind == fpview.KindKV]}
		case fpview.KindStaticRole:
			step = map[string]any{"action": "rotate-role", "path": mp + "rotate-role/" + strings.TrimPrefix(t.loc.Path, "static-roles/")}
		case fpview.KindRoot:
			step = map[string]any{"action": "rotate-root", "path": mp + "rotate-root/" + strings.TrimPrefix(t.loc.Path, "config/")}
		case fpview.KindSecretID:
			step = map[string]any{"action": "destroy-secret-id", "path": mp + strings.TrimSuffix(t.loc.Path, "/secret-id") + "/secret-id-accessor/destroy", "secret_id_accessor": t.loc.Accessor}
		case fpview.KindCreds:
			continue // its lease is revoked with the leases below
		}
		if step == nil {
			continue
		}
		k := fmt.Sprint(step["action"], step["path"])
		if seen[k] {
			continue
		}
		seen[k] = true
		steps = append(steps, step)
	}
	for _, id := range leases {
		steps = append(steps, map[string]any{"action": "revoke-lease", "path": "sys/leases/revoke", "lease_id": id})
	}
	for _, acc := range tokens {
		steps = append(steps, map[string]any{"action": "revoke-token", "path": "auth/token/revoke-accessor", "accessor": acc})
	}
	return steps
}

// isCurrent reports whether a KV location is the path's newest version.
func (s *sysBackend) isCurrent(l fpview.Location) bool {
	if l.Kind == fpview.KindKVv1 {
		return true
	}
	sec, ok := s.st.kv.Secret(l.Mount, l.Path)
	return ok && sec.CurrentVersion == l.Version
}

// sinceParam reads "since": an RFC 3339 time or a duration back from now; absent is zero.
func sinceParam(data map[string]any, now time.Time) (time.Time, error) {
	v, err := engines.String(data, "since", "")
	if err != nil || v == "" {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, engines.BadRequest("since %q: give an RFC 3339 time (2026-01-02T15:04:05Z) or a duration back from now (72h)", v)
}
