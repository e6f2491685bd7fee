package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	enginekv "github.com/ledger-secrets/ledger/engines/kv"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/mount"
	"github.com/ledger-secrets/ledger/projections/policy"
)

// History and time travel (issue 5), Ledger's own endpoints:
//
//	GET sys/ledger/history/<path>                every event on one secret or policy: time,
//	                                             operation, version, actor accessor, request id,
//	                                             position — never a value
//	GET sys/ledger/at/<path>?time=RFC3339|seq=N  the ordinary read of <path>, answered from the
//	                                             events up to that time or log sequence
//
// <path> is an API path: <kv-v2 mount>/data/<p> (the bare <mount>/<p>, and metadata/, subkeys/,
// delete/, undelete/, destroy/, rollback/ name the same secret; <mount>/config its mount's
// settings), <kv-v1 mount>/<p>, or sys/policies/acl/<name> (sys/policy/<name> alike).
//
// Both answer from the events of one aggregate — ledger.SubjectFor("kv", mount UUID, p) or
// ("policy", name) — never from the live views: the history index (projections/history) lists
// where its events are, and they are read back from the log. The mount is resolved through the
// mount table as it is now, so a path never reaches the events of another mount, not even of an
// earlier mount at the same path.
//
// ACL. The pipeline has checked read on the path as requested (sys/ledger/history/<path>). When
// that is not the canonical spelling — <mount>/data/<p> for a KV v2 secret, <mount>/<p> for KV
// v1, sys/policies/acl/<name> — read on the canonical one (sys/ledger/history/secret/data/x) is
// required too, so policies are written for one spelling and no other is a side door. A
// point-in-time read also needs read on the normal path it answers for (secret/data/x,
// secret/metadata/x, sys/policies/acl/name): time travel never shows what a plain read refuses.
//
// Values at a point in time are opened with today's data keys: a version destroyed, trimmed by
// max_versions or overwritten (KV v1) since then had its key shredded, and is reported as gone.

// ledgerPaths serves sys/ledger/history/ and sys/ledger/at/.
func (s *sysBackend) ledgerPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	switch {
	case strings.HasPrefix(p, "history/"):
		return s.history(ctx, req, strings.TrimPrefix(p, "history/"))
	case strings.HasPrefix(p, "at/"):
		return s.at(ctx, req, strings.TrimPrefix(p, "at/"))
	case p == "history" || p == "at":
		return nil, engines.BadRequest("missing path: use sys/ledger/%s/<path>, e.g. sys/ledger/%[1]s/secret/data/app/db or sys/ledger/%[1]s/sys/policies/acl/web", p)
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: route entry not found", "sys/ledger/"+p)
}

// aggregate is what a history path names: one KV secret (or a KV mount's configuration) or one
// ACL policy.
type aggregate struct {
	canon   string // canonical API path: "secret/data/app/db", "kv1/app/db", "sys/policies/acl/web"
	subject string

	mount    mount.Entry // KV only
	secret   string      // KV: the path inside the mount; "" for the mount's configuration
	endpoint string      // KV v2: the sub-API the path named ("data", "metadata", …; "" if bare)

	policy string // the policy's name; "" for KV
	group  string // an identity group's ID (history only)
	legacy bool   // spelt sys/policy/<name>
}

// kvEndpoints are the KV v2 sub-APIs whose paths name a secret.
var kvEndpoints = []string{"data", "metadata", "subkeys", "delete", "undelete", "destroy", "rollback"}

func (s *sysBackend) resolveAggregate(p string) (aggregate, error) {
	for _, pre := range []string{"sys/policies/acl/", "sys/policy/"} {
		if name, ok := strings.CutPrefix(p, pre); ok {
			name = strings.ToLower(name)
			if !policyNameRE.MatchString(name) || len(name) > 128 {
				return aggregate{}, engines.BadRequest("invalid policy name %q: use letters, digits, '-', '_', '.' and '@'", name)
			}
			return aggregate{canon: "sys/policies/acl/" + name, subject: ledger.SubjectFor("policy", name),
				policy: name, legacy: pre == "sys/policy/"}, nil
		}
	}
	if ag, ok, err := s.groupAggregate(p); ok || err != nil {
		return ag, err
	}
	if p == "sys" || strings.HasPrefix(p, "sys/") {
		return aggregate{}, engines.BadRequest("history is kept for KV secrets (<mount>/data/<path>) and ACL policies (sys/policies/acl/<name>); %q is neither", p)
	}
	m, ok := s.st.mounts.Match(p)
	if !ok {
		return aggregate{}, engines.Errorf(engines.ErrNotFound, "no mount holds %q", p)
	}
	if m.Type != "kv" {
		return aggregate{}, engines.BadRequest("history is kept for KV secrets and ACL policies; %q is in a %s mount", p, m.Type)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, strings.TrimSuffix(m.Path, "/")), "/")
	ag := aggregate{mount: m, secret: rel}
	if m.Options["version"] == "2" {
		if rel == "config" {
			ag.canon, ag.subject, ag.secret, ag.endpoint = m.Path+"config", ledger.SubjectFor("kv", m.UUID), "", "config"
			return ag, nil
		}
		for _, e := range kvEndpoints {
			if rel == e { // a sub-API's root names no secret
				ag.secret, ag.endpoint = "", e
				break
			}
			if rest, ok := strings.CutPrefix(rel, e+"/"); ok {
				ag.secret, ag.endpoint = rest, e
				break
			}
		}
		ag.canon = m.Path + "data/" + ag.secret
	} else {
		ag.canon = m.Path + ag.secret
	}
	switch {
	case ag.secret == "":
		return aggregate{}, engines.BadRequest("missing secret path after the mount %q", m.Path)
	case strings.HasSuffix(ag.secret, "/"):
		return aggregate{}, engines.BadRequest("invalid path %q: a secret path cannot end with \"/\"", p)
	}
	ag.subject = ledger.SubjectFor("kv", m.UUID, ag.secret)
	return ag, nil
}

// mayRead checks read on each path for the caller, beyond the pipeline's check of the path as
// requested.
func (s *sysBackend) mayRead(req *engines.Request, paths ...string) error {
	a := s.c.aclForCaller(s.st, req.Caller)
	for _, p := range paths {
		if !a.Allowed(acl.Read, p, nil).Allowed {
			return engines.Errorf(engines.ErrPermissionDenied, "permission denied")
		}
	}
	return nil
}

// --- history ---

// eventWords says what each event type did, for people; unknown types are spelt out from the
// type name.
var eventWords = map[string]string{
	kvview.VersionWritten:    "version written",
	kvview.VersionsDeleted:   "versions deleted",
	kvview.VersionsUndeleted: "versions undeleted",
	kvview.VersionsDestroyed: "versions destroyed",
	kvview.MetadataWritten:   "metadata written",
	kvview.MetadataDeleted:   "metadata and all versions deleted",
	kvview.ConfigWritten:     "mount configuration written",
	kvview.V1Written:         "value written",
	kvview.V1Deleted:         "value deleted",
	policy.Written:           "policy written",
	policy.Deleted:           "policy deleted",
}

func operation(typ string) string {
	if w, ok := eventWords[typ]; ok {
		return w
	}
	t := typ
	if i := strings.LastIndexByte(t, '.'); i > 0 && strings.HasPrefix(t[i+1:], "v") {
		t = t[:i]
	}
	return strings.ReplaceAll(t, ".", " ")
}

// eventFacts are the only payload fields history reads: which aggregate (to check the event is
// the one asked for) and which versions. Decoding into it leaves sealed values and key ids —
// and policy texts and custom metadata — behind.
type eventFacts struct {
	Mount    string   `json:"mount"`
	Path     string   `json:"path"`
	Name     string   `json:"name"`
	Version  uint64   `json:"version"`
	Versions []uint64 `json:"versions"`
	Trim     []uint64 `json:"trim"`
	// Imported versions (ledger operator import): the source's times, shown as such.
	Imported bool      `json:"imported"`
	Created  time.Time `json:"created"`
	Deletion time.Time `json:"deletion"`
	// Identity groups: who the members were after the change.
	ID            string   `json:"id"`
	MemberEntites []string `json:"member_entity_ids"`
	MemberGroups  []string `json:"member_group_ids"`
}

func (ag aggregate) owns(f eventFacts) bool {
	if ag.policy != "" {
		return f.Name == ag.policy
	}
	if ag.group != "" {
		return f.ID == ag.group
	}
	return f.Mount == ag.mount.UUID && f.Path == ag.secret
}

func (s *sysBackend) history(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	ag, err := s.resolveAggregate(p)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(req, "sys/ledger/history/"+ag.canon); err != nil {
		return nil, err
	}
	st, err := s.logStream(ctx)
	if err != nil {
		return nil, err
	}
	recs, err := s.aggregateEvents(ctx, st, ag, 0)
	if err != nil {
		return nil, err
	}
	events := make([]any, 0, len(recs))
	for _, rec := range recs {
		var f eventFacts
		if err := json.Unmarshal(rec.Payload, &f); err != nil {
			return nil, fmt.Errorf("event at %s (%s): decode: %w", rec.Pos, rec.Type, err)
		}
		if !ag.owns(f) {
			continue // another aggregate under the same subject hash: never shown
		}
		e := map[string]any{
			"sequence": rec.Pos.Seq, "index": rec.Pos.Index, "time": rec.Time.UTC().Format(time.RFC3339Nano),
			"type": rec.Type, "operation": operation(rec.Type), "actor": rec.Actor, "request_id": rec.Request,
		}
		switch rec.Type {
		case kvview.VersionWritten:
			e["version"] = f.Version
			if len(f.Trim) > 0 {
				e["trimmed_versions"] = f.Trim
			}
			if f.Imported {
				e["operation"] = "version imported"
				e["source_created_time"] = f.Created.UTC().Format(time.RFC3339Nano)
				if !f.Deletion.IsZero() {
					e["source_deletion_time"] = f.Deletion.UTC().Format(time.RFC3339Nano)
				}
			}
		case kvview.VersionsDeleted, kvview.VersionsUndeleted, kvview.VersionsDestroyed:
			e["versions"] = f.Versions
		case identityview.GroupWritten:
			e["member_entity_ids"], e["member_group_ids"] = append([]string{}, f.MemberEntites...), append([]string{}, f.MemberGroups...)
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return nil, engines.Errorf(engines.ErrNotFound, "no history at %q: nothing was ever written there", ag.canon)
	}
	return &engines.Response{Data: map[string]any{"path": ag.canon, "events": events}}, nil
}

// --- point in time ---

// point is a point in the log's past: events decided at or before time (when set) in batches
// up to seq (when set). now is the clock the read is answered at (deletion times are compared
// with it).
type point struct {
	seq  uint64
	time time.Time
	now  time.Time
	desc string
}

func (pt point) includes(rec ledger.Record) bool {
	return (pt.seq == 0 || rec.Pos.Seq <= pt.seq) && (pt.time.IsZero() || !rec.Time.After(pt.time))
}

// pointInTime reads ?time=RFC3339 or ?seq=N. Before the log's first event or past its end (in
// the future) is a 400 that says so.
func (s *sysBackend) pointInTime(ctx context.Context, st jetstream.Stream, req *engines.Request) (point, error) {
	ts, err := engines.String(req.Data, "time", "")
	if err != nil {
		return point{}, err
	}
	seqText, err := engines.String(req.Data, "seq", "")
	if err != nil {
		return point{}, err
	}
	switch {
	case ts != "" && seqText != "":
		return point{}, engines.BadRequest("give time or seq, not both")
	case ts == "" && seqText == "":
		return point{}, engines.BadRequest("missing point in time: add ?time=<RFC 3339 time> or ?seq=<log sequence>")
	}
	info := st.CachedInfo().State
	if info.LastSeq == 0 || info.FirstSeq == 0 {
		return point{}, engines.BadRequest("the log is empty: there is no past to read")
	}
	if ts != "" {
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return point{}, engines.BadRequest("time %q: expected an RFC 3339 time such as 2006-01-02T15:04:05Z", ts)
		}
		t = t.UTC()
		genesis, err := s.batchTime(ctx, st, info.FirstSeq, true)
		if err != nil {
			return point{}, err
		}
		switch {
		case t.Before(genesis):
			return point{}, engines.BadRequest("time %s is before the log's first event (%s): there is nothing to read", t.Format(time.RFC3339Nano), genesis.Format(time.RFC3339Nano))
		case t.After(req.Now):
			return point{}, engines.BadRequest("time %s is in the future (the server's clock reads %s)", t.Format(time.RFC3339Nano), req.Now.UTC().Format(time.RFC3339Nano))
		}
		return point{time: t, now: t, desc: t.Format(time.RFC3339Nano)}, nil
	}
	n, err := strconv.ParseUint(seqText, 10, 64)
	switch {
	case err != nil:
		return point{}, engines.BadRequest("seq %q: expected a log sequence number (1 or more)", seqText)
	case n < info.FirstSeq:
		return point{}, engines.BadRequest("sequence %d is before the log's first batch (%d): there is nothing to read", n, info.FirstSeq)
	case n > info.LastSeq:
		return point{}, engines.BadRequest("sequence %d is in the future: the log ends at sequence %d", n, info.LastSeq)
	}
	at, err := s.batchTime(ctx, st, n, false)
	if err != nil {
		return point{}, err
	}
	return point{seq: n, now: at, desc: "sequence " + strconv.FormatUint(n, 10)}, nil
}

func (s *sysBackend) at(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	ag, err := s.resolveAggregate(p)
	if err != nil {
		return nil, err
	}
	if ag.group != "" {
		return nil, engines.BadRequest("point-in-time reads are kept for KV secrets and ACL policies; use sys/ledger/history/%s for the group's changes", ag.canon)
	}
	// The read this answers as of the past, and the path of that read inside the mount.
	normal, rel := ag.canon, ag.secret
	if ag.policy == "" && ag.mount.Options["version"] == "2" {
		ep := ag.endpoint
		switch ep {
		case "":
			ep = "data"
		case "data", "metadata", "subkeys":
		default:
			return nil, engines.BadRequest("point-in-time reads serve data, metadata and subkeys of a secret, and policies; %q is none of them", p)
		}
		normal, rel = ag.mount.Path+ep+"/"+ag.secret, ep+"/"+ag.secret
	}
	if err := s.mayRead(req, "sys/ledger/at/"+normal, normal); err != nil {
		return nil, err
	}
	st, err := s.logStream(ctx)
	if err != nil {
		return nil, err
	}
	pt, err := s.pointInTime(ctx, st, req)
	if err != nil {
		return nil, err
	}
	recs, err := s.aggregateEvents(ctx, st, ag, pt.seq)
	if err != nil {
		return nil, err
	}
	if ag.policy != "" {
		return s.policyAt(ag, pt, recs)
	}
	view := kvview.New()
	for _, rec := range recs {
		if !pt.includes(rec) {
			continue
		}
		if err := view.Apply(rec); err != nil {
			return nil, fmt.Errorf("replay %s at %s: %w", rec.Type, rec.Pos, err)
		}
	}
	data := make(map[string]any, len(req.Data))
	for k, v := range req.Data {
		if k != "time" && k != "seq" {
			data[k] = v
		}
	}
	em := s.c.engineMount(ag.mount)
	b := enginekv.New(view, s.st.datakeys, s.st.keyring.Load(), em)
	resp, err := b.HandleRequest(ctx, &engines.Request{ID: req.ID, Op: engines.OpRead, Path: rel, Mount: em, Data: data,
		Caller: req.Caller, RemoteAddr: req.RemoteAddr, Now: pt.now})
	if errors.Is(err, enginekv.ErrValueGone) {
		if sec, ok := view.Secret(ag.mount.UUID, ag.secret); ok {
			n, _ := engines.Int(data, "version", 0)
			if n <= 0 {
				n = int(sec.CurrentVersion)
			}
			return nil, engines.BadRequest("version %d of %s as of %s can no longer be read: it was destroyed or removed since, and its data key has been shredded", n, ag.canon, pt.desc)
		}
		return nil, engines.BadRequest("the value of %s as of %s can no longer be read: it was overwritten or deleted since, and its data key has been shredded", ag.canon, pt.desc)
	}
	if errors.Is(err, engines.ErrNotFound) {
		return nil, engines.Errorf(engines.ErrNotFound, "nothing at %q as of %s", normal, pt.desc)
	}
	return resp, err
}

// policyAt answers sys/policies/acl/<name> (or sys/policy/<name>) as of pt.
func (s *sysBackend) policyAt(ag aggregate, pt point, recs []ledger.Record) (*engines.Response, error) {
	if ag.policy == "root" {
		return nil, engines.Errorf(engines.ErrNotFound, "policy %q is built in and has no text", ag.policy)
	}
	view := policy.New()
	for _, rec := range recs {
		if !pt.includes(rec) {
			continue
		}
		if err := view.Apply(rec); err != nil {
			return nil, fmt.Errorf("replay %s at %s: %w", rec.Type, rec.Pos, err)
		}
	}
	e, ok := view.Get(ag.policy)
	if !ok {
		return nil, engines.Errorf(engines.ErrNotFound, "policy %q did not exist as of %s", ag.policy, pt.desc)
	}
	if ag.legacy {
		return &engines.Response{Data: map[string]any{"name": ag.policy, "rules": e.Text}}, nil
	}
	return &engines.Response{Data: map[string]any{"name": ag.policy, "policy": e.Text}}, nil
}

// --- reading an aggregate's events back from the log ---

// aggregateEvents returns the events of ag's subject in batches up to upto (0: all), in log
// order, opened. It first lets the views catch up with the end of the log as st saw it, so an
// event another node appended before this request is not missed.
//
// An index position whose batch is missing or holds another event fails the request (it
// surfaces as a 500 naming the position): the log is immutable, so that is a corrupt log, or
// an index restored from a snapshot of another log.
func (s *sysBackend) aggregateEvents(ctx context.Context, st jetstream.Stream, ag aggregate, upto uint64) ([]ledger.Record, error) {
	idx := s.st.history
	if err := s.st.runner.WaitFor(ctx, st.CachedInfo().State.LastSeq); err != nil {
		return nil, fmt.Errorf("catch up with the log: %w", err)
	}
	positions := idx.Positions(ag.subject)
	if len(positions) == 0 {
		return nil, nil
	}
	kr := s.st.keyring.Load()
	var err error
	recs := make([]ledger.Record, 0, len(positions))
	var b ledger.Batch
	for _, pos := range positions {
		if upto != 0 && pos.Seq > upto {
			break
		}
		if b.Seq != pos.Seq {
			if b, err = readBatch(ctx, st, pos.Seq); err != nil {
				return nil, err
			}
		}
		if int(pos.Index) >= len(b.Events) {
			return nil, fmt.Errorf("history index names event %s, which batch %d does not hold: %w", pos, b.Seq, ledger.ErrCorrupt)
		}
		rec, err := b.Events[pos.Index].Open(kr, pos)
		if err != nil {
			return nil, err
		}
		if rec.Subject != ag.subject {
			return nil, fmt.Errorf("history index names event %s for another subject: %w", pos, ledger.ErrCorrupt)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// logStream and readBatch read single batches of the log by sequence (a direct get), which
// ledger.Log does not offer: Follow and ReadRange stream ranges. They belong in package ledger
// (as Log.Batch) once it grows such a method.
func (s *sysBackend) logStream(ctx context.Context) (jetstream.Stream, error) {
	st, err := s.c.log.JetStream().Stream(ctx, ledger.StreamName)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", ledger.StreamName, err)
	}
	return st, nil
}

func readBatch(ctx context.Context, st jetstream.Stream, seq uint64) (ledger.Batch, error) {
	m, err := st.GetMsg(ctx, seq)
	if err != nil {
		return ledger.Batch{}, fmt.Errorf("read batch %d: %w", seq, err)
	}
	return ledger.DecodeBatch(seq, m.Data)
}

// batchTime is the decision time of the batch at seq: of its first event (first), else of its
// latest one.
func (s *sysBackend) batchTime(ctx context.Context, st jetstream.Stream, seq uint64, first bool) (time.Time, error) {
	b, err := readBatch(ctx, st, seq)
	if err != nil {
		return time.Time{}, err
	}
	kr := s.st.keyring.Load()
	var t time.Time
	for i, se := range b.Events {
		rec, err := se.Open(kr, ledger.Position{Seq: seq, Index: uint32(i)})
		if err != nil {
			return time.Time{}, err
		}
		if first {
			return rec.Time, nil
		}
		if rec.Time.After(t) {
			t = rec.Time
		}
	}
	return t, nil
}
