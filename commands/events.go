package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-bexpr"

	"github.com/ledger-secrets/ledger/commands/acl"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/events"
)

// SubscribeRequest opens sys/events/subscribe/:event_type.
type SubscribeRequest struct {
	Token, RemoteAddr string
	Pattern           string // event type glob: "kv-v2/data-write", "kv*", "*"
	// After resumes strictly after a position an earlier event carried ("ledgerpos", "42.3"),
	// or after the whole batch "42". FromIndex starts at a log sequence, inclusive. Neither:
	// only what is committed from now on.
	After, FromIndex string
	Namespaces       []string
	Filter           string
}

// EventSubscription is an authorised subscription, ready to run. It holds the token only in
// memory, to re-check it as the stream goes on.
type EventSubscription struct {
	c       *Core
	req     SubscribeRequest
	from    uint64
	after   ledger.Position
	skipTo  bool             // events at or before after are skipped
	filter  *bexpr.Evaluator // the request's filter; nil: every event
	Started uint64
}

// SubscribeEvents checks a subscription: the pattern, the options Ledger supports, and the
// token's read capability on sys/events/subscribe/<pattern> (Vault's rule). Errors are the
// pipeline's: ErrSealed, engines.ErrBadRequest, engines.ErrPermissionDenied.
func (c *Core) SubscribeEvents(ctx context.Context, r SubscribeRequest) (*EventSubscription, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	st := c.st
	if st == nil {
		return nil, ErrSealed
	}
	// Audited like any request, fail-closed: the record of the subscription (or of its refusal)
	// is stored before the answer.
	rq := &Request{ID: newUUID(), Op: engines.OpRead, Path: "sys/events/subscribe/" + r.Pattern, Token: r.Token, RemoteAddr: r.RemoteAddr}
	var trail auditTrail
	if rt, err := c.route(st, rq.Path); err == nil {
		trail.req = &engines.Request{ID: rq.ID, Op: rq.Op, Path: rt.rel, Mount: c.engineMount(rt.mount), Data: map[string]any{},
			RemoteAddr: r.RemoteAddr, Now: time.Now()}
		trail.mountType = rt.mount.Type
	}
	s, err := c.subscribe(ctx, st, r, trail.req)
	if aerr := c.auditRecord(ctx, st, rq, &trail, nil, err); aerr != nil {
		c.logger.Error("audit record not stored; refusing the subscription", "request_id", rq.ID, "err", aerr)
		return nil, fmt.Errorf("audit: %w", aerr)
	}
	return s, err
}

// subscribe is SubscribeEvents' checks; req, when set, learns the caller for the audit record.
func (c *Core) subscribe(ctx context.Context, st *unsealed, r SubscribeRequest, req *engines.Request) (*EventSubscription, error) {
	if err := events.ValidPattern(r.Pattern); err != nil {
		return nil, engines.BadRequest("%s", err.Error())
	}
	filter, err := newEventFilter(r.Filter)
	if err != nil {
		return nil, engines.BadRequest("filter: %s", err.Error())
	}
	for _, ns := range r.Namespaces {
		if ns != "" && ns != "root" && ns != "/" {
			return nil, engines.BadRequest("namespaces: Ledger has only the root namespace, not %q", ns)
		}
	}
	if r.After != "" && r.FromIndex != "" {
		return nil, engines.BadRequest("give either after (resume after an event's ledgerpos) or from_index (start at a log sequence), not both")
	}
	now := time.Now()
	e, err := st.authenticate(r.Token, r.RemoteAddr, now)
	if err != nil {
		return nil, err
	}
	if req != nil {
		req.Caller = callerOf(e, now)
	}
	if !c.aclForToken(st, e).Allowed(acl.Read, "sys/events/subscribe/"+r.Pattern, nil).Allowed {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied: subscribing needs read on sys/events/subscribe/%s", r.Pattern)
	}
	s := &EventSubscription{c: c, req: r, filter: filter}
	switch {
	case r.After != "":
		p, hasIdx, err := events.ParsePos(r.After)
		if err != nil {
			return nil, engines.BadRequest("after: %s", err.Error())
		}
		s.after, s.skipTo = p, true
		s.from = p.Seq
		if !hasIdx {
			s.from, s.skipTo = p.Seq+1, false
		}
	case r.FromIndex != "":
		p, hasIdx, err := events.ParsePos(r.FromIndex)
		if err != nil || hasIdx {
			return nil, engines.BadRequest("from_index %q: expected a log sequence such as 42", r.FromIndex)
		}
		s.from = p.Seq
	default:
		last, err := c.log.LastSeq(ctx)
		if err != nil {
			return nil, fmt.Errorf("events: %w", err)
		}
		s.from = last + 1
	}
	s.Started = s.from
	return s, nil
}

// Run streams the subscription's events to send, in log order, until ctx ends, send fails, the
// node seals (ErrSealed) or the token stops being valid (ErrPermissionDenied). Each batch is
// delivered only after the local views applied it, so the mount, token and policies an event
// is checked against are at least as new as the event. An event reaches send only when its
// type matches the pattern and the token may see its path (see mayReceive); nothing is said of
// the others, not even that they were skipped.
func (s *EventSubscription) Run(ctx context.Context, send func(events.Event) error) error {
	next := max(s.from, 1)
	for {
		err := s.follow(ctx, next, send, &next)
		if !errors.Is(err, ledger.ErrFollowLost) || ctx.Err() != nil {
			return err
		}
		// The log's feed was lost (a stream leader moving): go on from the next batch, after a
		// pause; nothing is delivered twice or skipped.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// follow is Run's one pass over the log from `from`; *next is the batch after the last one
// delivered.
func (s *EventSubscription) follow(ctx context.Context, from uint64, send func(events.Event) error, next *uint64) error {
	return s.c.log.Follow(ctx, from, false, func(b ledger.Batch) error {
		defer func() { *next = b.Seq + 1 }()
		st, err := s.c.current()
		if err != nil {
			return err
		}
		if err := st.runner.WaitFor(ctx, b.Seq); err != nil {
			if errors.Is(err, projections.ErrStopped) {
				return ErrSealed
			}
			return err
		}
		e, err := st.authenticate(s.req.Token, s.req.RemoteAddr, time.Now())
		if err != nil {
			return err
		}
		a := s.c.aclForToken(st, e)
		kr := st.keyring.Load()
		for i, se := range b.Events {
			if !events.Relevant(se.Type()) {
				continue
			}
			pos := ledger.Position{Seq: b.Seq, Index: uint32(i)}
			if s.skipTo && !s.after.Less(pos) {
				continue
			}
			rec, err := se.Open(kr, pos)
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			ev, ok, err := events.Translate(rec, st.mounts)
			if err != nil {
				return fmt.Errorf("events: %w", err)
			}
			if !ok || !events.Match(s.req.Pattern, ev.EventType()) || !mayReceive(a, ev) || !s.passes(ev) {
				continue
			}
			ev.Type = s.req.Pattern
			if err := send(ev); err != nil {
				return err
			}
		}
		return nil
	})
}

// eventDatum is what a subscription's filter sees of an event, as Vault's go-bexpr filter
// does: the event type, the operation and data path its metadata names, the path of the mount
// it came from, and the namespace ("" is the root namespace, Ledger's only one).
type eventDatum struct {
	EventType         string `bexpr:"event_type"`
	Operation         string `bexpr:"operation"`
	SourcePluginMount string `bexpr:"source_plugin_mount"`
	DataPath          string `bexpr:"data_path"`
	Namespace         string `bexpr:"namespace"`
}

func datumOf(ev events.Event) eventDatum {
	return eventDatum{EventType: ev.EventType(), Operation: ev.Data.Event.Metadata["operation"],
		SourcePluginMount: ev.Data.PluginInfo.MountPath, DataPath: ev.DataPath()}
}

// Bounds on a filter: its length, and the parser's steps (go-bexpr's parser backtracks; a
// 4 KiB filter of 200 terms takes ~40,000 steps, a pathological nesting is stopped here).
const (
	maxFilterBytes      = 4096
	maxFilterParseSteps = 100_000
)

// newEventFilter parses a subscription's filter (nil for none). A filter that does not parse,
// or names a selector an event does not have, is refused here rather than dropping every event
// later.
func newEventFilter(expr string) (*bexpr.Evaluator, error) {
	if expr == "" {
		return nil, nil
	}
	if len(expr) > maxFilterBytes {
		return nil, fmt.Errorf("%d bytes, at most %d", len(expr), maxFilterBytes)
	}
	ev, err := bexpr.CreateEvaluator(expr, bexpr.WithMaxExpressions(maxFilterParseSteps))
	if err == nil {
		_, err = ev.Evaluate(eventDatum{})
	}
	if err != nil {
		return nil, fmt.Errorf("%w (selectors: %s)", err, filterSelectors)
	}
	return ev, nil
}

// filterSelectors names what a filter may select on (eventDatum's bexpr tags), for its errors.
const filterSelectors = "event_type, operation, data_path, source_plugin_mount, namespace"

// passes reports whether ev matches the subscription's filter. It was checked against an
// event's shape when the subscription opened, so it does not fail; if it did, the event is
// not sent, as Vault drops an event its filter cannot evaluate.
func (s *EventSubscription) passes(ev events.Event) bool {
	if s.filter == nil {
		return true
	}
	ok, err := s.filter.Evaluate(datumOf(ev))
	return err == nil && ok
}

// current is the unsealed state, or ErrSealed.
func (c *Core) current() (*unsealed, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return nil, ErrSealed
	}
	return c.st, nil
}

// mayReceive is Vault's per-event rule: the token holds the subscribe capability on the
// event's data_path (or its request path), with read or list there too — so a change is shown
// only to whoever could already see the path it names. A policy's subscribe_event_types, when
// set, must also match the event type.
func mayReceive(a *acl.ACL, ev events.Event) bool {
	if a.IsRoot() {
		return true
	}
	for _, p := range []string{ev.DataPath(), ev.Path()} {
		if p == "" {
			continue
		}
		caps := a.Capabilities(p)
		if !slices.Contains(caps, "read") && !slices.Contains(caps, "list") {
			continue
		}
		types, ok := a.SubscribeEventTypes(p)
		if !ok {
			continue
		}
		if types == nil || slices.ContainsFunc(types, func(t string) bool { return events.Match(t, ev.EventType()) }) {
			return true
		}
	}
	return false
}

// EventTypes lists the event types Ledger emits (for help and the CLI).
func EventTypes() []string { return append([]string(nil), events.Types...) }
