package commands

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// auditEvents returns the audit record of a write as an event to append in the write's own
// batch, so the record and the change it describes are durable together — or neither is.
func (c *Core) auditEvents(st *unsealed, r *Request, trail *auditTrail, resp *engines.Response) []ledger.Event {
	ev, err := c.buildRecord(st, r, trail, resp, nil).CompactEvent()
	if err != nil {
		// A record always encodes (its data was normalised through JSON); if one did not, an
		// event saying so still goes with the write.
		ev, _ = audit.Record{Time: time.Now().UTC(), Request: &audit.Request{ID: r.ID, Operation: string(r.Op), Path: r.Path},
			Error: "audit record could not be encoded"}.CompactEvent()
	}
	return []ledger.Event{ev}
}

// auditTimeout bounds how long a request waits for its record to be stored (through a
// JetStream leader election, say) before it fails.
const auditTimeout = 15 * time.Second

// recordBuffers holds the buffers read records are encoded into (auditRecord).
var recordBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// maxPooledRecord: a buffer grown past this by an unusually large record is dropped.
const maxPooledRecord = 64 << 10

// auditRecord stores the audit record of a request that appended nothing (a read, a denial, a
// failure) in LEDGER_AUDIT before the answer leaves. An error fails the request. The record is
// stored even when the client has gone: what happened, happened.
func (c *Core) auditRecord(ctx context.Context, st *unsealed, r *Request, trail *auditTrail, resp *engines.Response, err error) error {
	// The record is encoded into a pooled buffer: Append seals the payload into an event of its
	// own before it returns, so the plaintext is not needed after it, and is cleared.
	bp := recordBuffers.Get().(*[]byte)
	ev, eerr := c.buildRecord(st, r, trail, resp, err).EventInto(*bp)
	defer func() {
		b := (*bp)[:cap(*bp)]
		clear(b)
		if p := ev.Payload[:cap(ev.Payload)]; cap(p) > cap(b) {
			clear(p)
			b = p // grown: keep the larger buffer
		}
		if cap(b) <= maxPooledRecord {
			*bp = b[:0]
			recordBuffers.Put(bp)
		}
	}()
	if eerr != nil {
		return eerr
	}
	ev.Request = r.ID
	if trail.req != nil && trail.req.Caller != nil {
		ev.Actor = trail.req.Caller.Accessor
	}
	_, aerr := st.audit.stream.Append(auditDeadline.context(), []ledger.Event{ev})
	return aerr
}

// auditDeadline is the context read records are appended under: not the request's (a record
// is stored even when the client has gone), but one whose deadline is auditTimeout from about
// now. A context with a deadline of its own per request cost a timer and three allocations
// (1.9 µs of a read's CPU in a profile); requests within sharedDeadlineStep of each other
// share one, so a record waits between auditTimeout-sharedDeadlineStep and auditTimeout.
var auditDeadline = &sharedDeadline{timeout: auditTimeout}

const sharedDeadlineStep = 100 * time.Millisecond

type sharedDeadline struct {
	timeout time.Duration
	cur     atomic.Pointer[deadlineCtx]
}

type deadlineCtx struct {
	ctx    context.Context
	cancel context.CancelFunc // never called early: others may hold ctx; it ends by its deadline
	made   time.Time
}

func (s *sharedDeadline) context() context.Context {
	now := time.Now()
	if d := s.cur.Load(); d != nil && now.Sub(d.made) < sharedDeadlineStep {
		return d.ctx
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	d := &deadlineCtx{ctx: ctx, cancel: cancel, made: now}
	s.cur.Store(d)
	return ctx
}

// buildRecord describes a request in Vault's audit shape, with every sensitive string HMACed.
// Data keys that some enabled device lists as non-HMAC stay in the clear and are named in the
// record, so the devices that do not list them HMAC them when they emit it.
func (c *Core) buildRecord(st *unsealed, r *Request, trail *auditTrail, resp *engines.Response, err error) audit.Record {
	kr := st.keyring.Load()
	keepReq, keepResp := st.audit.view.NonHMACKeys()
	now := time.Now().UTC()
	op := r.Op
	// Packed: the root namespace, the auth block's copies of the request's token fields and
	// the response's mount fields are left to audit.Decode.
	rq := &audit.Request{ID: r.ID, Path: r.Path}
	if trail.req != nil {
		op, now = trail.req.Op, trail.req.Now
		m := trail.req.Mount
		rq.MountPoint, rq.MountType, rq.MountAccessor = m.Path, trail.mountType, m.Accessor
		rq.MountClass = mountClass(m.Path, trail.mountType)
	}
	rq.Operation = string(op)
	if r.Token != "" {
		rq.ClientToken = audit.HMAC(kr, r.Token)
	}
	rq.RemoteAddress, rq.RemotePort = splitRemote(r.RemoteAddr)
	rec := audit.Record{Time: now, Request: rq, Packed: true}
	rq.Hashed, rq.Data, rec.RawRequestKeys = hashData(kr, r.Data, keepReq)

	var caller *engines.Caller
	if trail.req != nil {
		caller = trail.req.Caller
	}
	if caller != nil {
		rq.ClientTokenAccessor = caller.Accessor
		rec.Auth = &audit.Auth{
			DisplayName: caller.DisplayName, Policies: caller.Policies, Metadata: caller.Meta, EntityID: caller.EntityID,
			TokenType: "service", TokenTTL: int64(caller.TTL / time.Second),
			PolicyResults: &audit.PolicyResults{Allowed: !errors.Is(err, engines.ErrPermissionDenied)},
		}
		if e, ok := st.tokens.ByMAC(caller.TokenMAC); ok {
			if e.Type != "" {
				rec.Auth.TokenType = e.Type
			}
			rec.Auth.RemainingUses = e.UsesLeft
			if !e.CreationTime.IsZero() {
				rec.Auth.TokenIssueTime = e.CreationTime.UTC().Format(time.RFC3339)
			}
		}
	}
	if err != nil {
		rec.Error = auditError(err)
		return rec
	}
	if resp == nil {
		return rec
	}
	rs := &audit.Response{Warnings: resp.Warnings}
	rs.Hashed, rs.Data, rec.RawResponseKeys = hashData(kr, resp.Data, keepResp)
	if resp.Secret != nil && resp.Secret.LeaseID != "" {
		rs.Secret = &audit.Secret{LeaseID: resp.Secret.LeaseID}
	}
	if a := resp.Auth; a != nil {
		rs.Auth = &audit.Auth{
			Accessor: a.Accessor, Policies: a.Policies, TokenPolicies: a.TokenPolicies, Metadata: a.Metadata,
			EntityID: a.EntityID, TokenType: a.TokenType, TokenTTL: int64(a.LeaseDuration / time.Second), RemainingUses: a.NumUses,
		}
		if a.ClientToken != "" {
			rs.Auth.ClientToken = audit.HMAC(kr, a.ClientToken)
		}
	}
	rec.Response = rs
	return rec
}

// hashData is data as the record stores it (audit.AppendHashedData), or, when it cannot be
// encoded, a marker in its place: nothing unhashed may go out, so the data is described
// instead of logged.
func hashData(kr *ledger.Keyring, data map[string]any, keep map[string]bool) (audit.HashedData, map[string]any, []string) {
	if len(data) == 0 {
		return nil, nil, nil
	}
	h, kept, err := audit.AppendHashedData(make([]byte, 0, hashedDataRoom), kr, data, keep)
	if err != nil {
		return nil, map[string]any{"ledger_audit_error": "data could not be encoded for the audit record"}, nil
	}
	return h, nil, kept
}

// hashedDataRoom is a KV read's response data, hashed, with room to spare: the block is
// built in one allocation for most requests.
const hashedDataRoom = 512

// auditError is the error text a record carries: the message the client saw.
func auditError(err error) string {
	var noted interface{ AuditError() string }
	switch {
	case errors.As(err, &noted):
		return noted.AuditError()
	case errors.Is(err, engines.ErrPermissionDenied):
		return "permission denied"
	case errors.Is(err, ErrSealed):
		return ErrSealed.Error()
	}
	return err.Error()
}

func mountClass(path, typ string) string {
	switch {
	case typ == "system":
		return ""
	case strings.HasPrefix(path, "auth/"):
		return "auth"
	}
	return "secret"
}

func splitRemote(addr string) (string, int) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 0
	}
	p, _ := strconv.Atoi(port)
	return host, p
}
