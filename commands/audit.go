package commands

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/audit"
	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
)

// AuditOptions configure the audit trail.
type AuditOptions struct {
	// RetentionAge and RetentionBytes bound the LEDGER_AUDIT stream of read and denial records
	// (0: the defaults, DefaultAuditRetentionAge and DefaultAuditRetentionBytes; negative: no
	// limit). Write records live in the log and are kept with it.
	RetentionAge   time.Duration
	RetentionBytes int64
	// SyncReads makes the read/denial records fsync'd before the answer leaves, like writes.
	// Off by default: they are acknowledged once JetStream holds them and flushed right after
	// (Vault's file device does not fsync either), so a read does not cost an fsync.
	SyncReads bool
	// DirectReads appends each read's record to LEDGER_AUDIT and waits for JetStream's ack
	// before the answer, instead of keeping it in the node's spool first (ledger.StreamConfig
	// Spool): reads cost more, and no record waits on the node.
	DirectReads bool
	// CheckpointEvents and CheckpointInterval: the active node appends a checkpoint of the hash
	// chain after this many events, or this long after the last one if anything happened since.
	CheckpointEvents   uint64
	CheckpointInterval time.Duration
}

// Checkpoint defaults.
const (
	DefaultCheckpointEvents   = 10000
	DefaultCheckpointInterval = 60 * time.Second
)

// auditState is the audit trail of an unsealed node: the view of devices and checkpoints (a
// projection like any other), the LEDGER_AUDIT stream, the running devices and the
// checkpointer. It lives and dies with the unsealed state.
type auditState struct {
	view    *audit.View
	stream  *ledger.Stream
	devices *audit.Manager
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func newAuditState() *auditState { return &auditState{view: audit.NewView(), cancel: func() {}} }

// auditGather is how long the audit stream's writer may hold a batch of read records back while
// the one before it is unacknowledged (ledger.StreamConfig.Gather).
const auditGather = 50 * time.Microsecond

// auditSpoolDir is the audit stream's spool, under the embedded server's data directory.
const auditSpoolDir = "audit-spool"

// startAudit opens LEDGER_AUDIT and starts the devices and the checkpointer. Called while
// unsealing, once the views have caught up and the log holds the keyring.
func (c *Core) startAudit(ctx context.Context, st *unsealed) error {
	a := st.audit
	o := c.opts.Audit
	retAge, retBytes := auditRetention(o)
	cfg := ledger.StreamConfig{
		Name: audit.StreamName, Subject: audit.StreamSubject, Subjects: audit.StreamSubjects(),
		Description: "Ledger audit records of reads and denials (encrypted batches)",
		MaxAge:      retAge, MaxBytes: retBytes, Replicas: max(c.opts.Replicas, 1), Logger: c.logger,
		AsyncPersist: !o.SyncReads,
		// Reads arrive many at a time and each waits for its record: gathering them while the
		// previous batch is acknowledged cut a read's CPU by about a tenth; longer than 50 µs,
		// the wait cost more throughput than the fewer messages saved (BENCHMARKS, issue 10).
		Gather: auditGather,
	}
	if dir := c.log.LocalDir(); dir != "" {
		// On one node with the embedded server, a read's record is written to a local spool
		// and reaches JetStream right after, many records per message: a JetStream round trip
		// per read was a third of a read's CPU (BENCHMARKS, issue 10). With DirectReads the
		// spool is only emptied of what an earlier run left.
		cfg.Spool, cfg.Direct = filepath.Join(dir, auditSpoolDir), o.DirectReads
	}
	if c.opts.HA != nil {
		// Every node of a cluster records the reads it answers: each on its own subject, its
		// own hash chain, so the nodes never refuse each other's batches.
		cfg.Subject, cfg.ChainPerSubject = audit.NodeSubject(c.opts.HA.Node), true
	}
	var s *ledger.Stream
	err := ledger.RetryJS(ctx, c.logger, "open the audit stream", termCatchUp, func(actx context.Context) error {
		var err error
		s, err = ledger.OpenStream(actx, c.log.JetStream(), cfg, c.log.Keyring)
		return err
	})
	if err != nil {
		return fmt.Errorf("audit stream: %w", err)
	}
	a.stream = s
	a.devices = audit.NewManager(c.log.JetStream(), a.view, st.keyring.Load, c.logger).WithProduct(Version)
	rctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		c.watchAuditRetention(rctx, st, retAge, retBytes)
	}()
	return nil
}

// deliver runs the audit devices and the checkpointer until ctx ends: a side effect of the
// active node only (runDuties), so each record reaches each device from one node.
func (c *Core) deliverAudit(ctx context.Context, st *unsealed) {
	var wg sync.WaitGroup
	wg.Go(func() { st.audit.devices.Run(ctx) })
	wg.Go(func() { c.checkpoints(ctx, st) })
	wg.Wait()
}

// stop ends the devices and the checkpointer and lets the stream's writer finish.
func (a *auditState) stop() {
	a.cancel()
	a.wg.Wait()
	if a.stream != nil {
		a.stream.Close()
	}
}

// checkpoints appends audit.checkpoint.v1 every CheckpointEvents events, or every
// CheckpointInterval when anything happened since the last one. Only the active node does this;
// until Ledger has HA, every unsealed node is the active one.
func (c *Core) checkpoints(ctx context.Context, st *unsealed) {
	every, interval := c.opts.Audit.CheckpointEvents, c.opts.Audit.CheckpointInterval
	if every == 0 {
		every = DefaultCheckpointEvents
	}
	if interval <= 0 {
		interval = DefaultCheckpointInterval
	}
	tick := time.NewTicker(min(interval, time.Second))
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-st.audit.view.DueAfter(every):
		case <-tick.C:
		}
		since, cp := st.audit.view.SinceCheckpoint()
		if !cp.Time.IsZero() && cp.Time.After(last) {
			last = cp.Time
		}
		if since == 0 || (since < every && time.Since(last) < interval) {
			continue
		}
		if _, err := c.appendCheckpoint(ctx, st); err != nil && ctx.Err() == nil {
			c.logger.Error("audit checkpoint", "err", err)
		}
		last = time.Now()
	}
}

// appendCheckpoint vouches for the chain up to what this node has applied: the runner checked
// every link up to its head as it applied them.
func (c *Core) appendCheckpoint(ctx context.Context, st *unsealed) (audit.Checkpoint, error) {
	seq, hash := st.runner.Head()
	if seq == 0 {
		return audit.Checkpoint{}, errors.New("nothing to checkpoint yet")
	}
	cp := audit.Checkpoint{Seq: seq, Hash: audit.HashHex(hash), Events: st.audit.view.Events(), Time: time.Now().UTC()}
	b, err := json.Marshal(cp)
	if err != nil {
		return cp, err
	}
	pos, err := c.log.Append(ctx, []ledger.Event{{Type: audit.Checkpointed, Subject: audit.Subject, Payload: b}})
	if err != nil {
		return cp, fmt.Errorf("append checkpoint: %w", err)
	}
	if err := st.runner.WaitFor(ctx, pos[0].Seq); err != nil {
		return cp, err
	}
	cp.At = pos[0]
	return cp, nil
}

// ReopenAuditDevices makes file devices reopen their files (the server calls it on SIGHUP,
// after log rotation) and socket devices redial.
func (c *Core) ReopenAuditDevices() {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st != nil && c.st.audit.devices != nil {
		c.st.audit.devices.Reopen()
	}
}

// AuditDeviceStatus reports each running audit device's health: counters of delivered entries
// and failed attempts and a gauge of pending messages. It is what a metrics endpoint exports
// (there is no sys/metrics yet); sys/ledger/audit/devices serves it. Sealed: ErrSealed.
func (c *Core) AuditDeviceStatus(ctx context.Context) ([]audit.DeviceStatus, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.st == nil {
		return nil, ErrSealed
	}
	if c.st.audit.devices == nil {
		return nil, nil
	}
	return c.st.audit.devices.Status(ctx), nil
}

// auditPaths serves sys/audit (list), sys/audit/:path (enable, disable) and
// sys/audit-hash/:path.
func (s *sysBackend) auditPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	view := s.st.audit.view
	switch {
	case p == "audit":
		if req.Op != engines.OpRead && req.Op != engines.OpList {
			return nil, engines.ErrUnsupported
		}
		data := map[string]any{}
		for _, d := range view.Devices() {
			data[d.Path] = deviceJSON(d)
		}
		return &engines.Response{Data: data}, nil
	case strings.HasPrefix(p, "audit-hash/"):
		path, err := devicePath(strings.TrimPrefix(p, "audit-hash/"))
		if err != nil {
			return nil, err
		}
		if !isWrite(req.Op) {
			return nil, engines.ErrUnsupported
		}
		if _, ok := view.Get(path); !ok {
			return nil, engines.BadRequest("unknown audit backend %q", path)
		}
		in, err := engines.String(req.Data, "input", "")
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"hash": audit.HMAC(s.st.keyring.Load(), in)}}, nil
	}
	path, err := devicePath(strings.TrimPrefix(p, "audit/"))
	if err != nil {
		return nil, err
	}
	d, exists := view.Get(path)
	switch req.Op {
	case engines.OpRead:
		if !exists {
			return nil, engines.Errorf(engines.ErrNotFound, "no audit device at %q", path)
		}
		return &engines.Response{Data: deviceJSON(d)}, nil
	case engines.OpCreate, engines.OpUpdate:
		return s.enableAudit(ctx, req, path, exists)
	case engines.OpDelete:
		if !exists {
			return nil, nil
		}
		b, _ := json.Marshal(audit.DisabledPayload{Path: path, UUID: d.UUID})
		return &engines.Response{Events: []ledger.Event{{Type: audit.DeviceDisabled, Subject: audit.Subject, Payload: b}}}, nil
	}
	return nil, engines.ErrUnsupported
}

func devicePath(rest string) (string, error) {
	if rest == "" || !mountPathRE.MatchString(rest) {
		return "", engines.BadRequest("invalid audit device path %q: use letters, digits, '-', '_', '.' and '/' between segments", rest)
	}
	return strings.TrimSuffix(rest, "/") + "/", nil
}

func deviceJSON(d audit.Device) map[string]any {
	return map[string]any{"type": d.Type, "description": d.Description, "options": d.Redacted(), "path": d.Path, "local": d.Local}
}

// enableAudit checks the device's options and that its sink is reachable before anything is
// appended: a device that cannot write is refused at once, not discovered later.
func (s *sysBackend) enableAudit(ctx context.Context, req *engines.Request, path string, exists bool) (*engines.Response, error) {
	typ, err := engines.String(req.Data, "type", "")
	if err != nil {
		return nil, err
	}
	if typ == "" {
		return nil, engines.BadRequest("field \"type\" is required: file, syslog, socket, http, nats, rabbitmq or mqtt")
	}
	desc, err := engines.String(req.Data, "description", "")
	if err != nil {
		return nil, err
	}
	local, err := engines.Bool(req.Data, "local", false)
	if err != nil {
		return nil, err
	}
	options, err := engines.StringMap(req.Data, "options")
	if err != nil {
		return nil, err
	}
	if options == nil {
		options = map[string]string{}
	}
	if exists {
		return nil, engines.BadRequest("path already in use: an audit device is enabled at %q", path)
	}
	set, err := audit.ParseSettings(typ, options)
	if err != nil {
		return nil, engines.BadRequest("%s", err.Error())
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := audit.Probe(pctx, typ, set); err != nil {
		return nil, engines.BadRequest("%s", err.Error())
	}
	d := audit.Device{Path: path, Type: typ, Description: desc, Options: options, Local: local, UUID: newUUID(), EnabledAt: req.Now, AuditStart: 1}
	if set.Backfill {
		d.LogStart = 1
	} else {
		last, err := s.st.audit.stream.LastSeq(ctx)
		if err != nil {
			return nil, err
		}
		d.AuditStart = last + 1
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{{Type: audit.DeviceEnabled, Subject: audit.Subject, Payload: b}}}, nil
}

// auditLedgerPaths serves Ledger's own audit endpoints under sys/ledger/audit/, all sudo:
// verify (the hash chain), tail and query (records without any device), checkpoints,
// checkpoint (append one now) and devices (health).
func (s *sysBackend) auditLedgerPaths(ctx context.Context, req *engines.Request, p string) (*engines.Response, error) {
	if req.Caller == nil {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	a := s.c.aclForCaller(s.st, req.Caller)
	if !a.IsRoot() && !a.Allowed(aclOp(req.Op), "sys/ledger/audit/"+p, req.Data).Sudo {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	read := req.Op == engines.OpRead
	switch {
	case p == "verify" && (read || isWrite(req.Op)):
		return s.auditVerify(ctx, req)
	case p == "tail" && read:
		return s.auditTail(ctx, req)
	case p == "query" && read:
		return s.auditQuery(ctx, req)
	case p == "checkpoints" && read:
		return &engines.Response{Data: map[string]any{"checkpoints": s.st.audit.view.Checkpoints()}}, nil
	case p == "checkpoint" && isWrite(req.Op):
		cp, err := s.c.appendCheckpoint(ctx, s.st)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"checkpoint": cp}}, nil
	case p == "devices" && read:
		return &engines.Response{Data: map[string]any{"devices": s.st.audit.devices.Status(ctx)}}, nil
	case p == "verify" || p == "tail" || p == "query" || p == "checkpoints" || p == "checkpoint" || p == "devices":
		return nil, engines.ErrUnsupported
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no handler for route %q: use verify, tail, query, checkpoints, checkpoint or devices", "sys/ledger/audit/"+p)
}

func (s *sysBackend) auditVerify(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	from, err := uintParam(req.Data, "from")
	if err != nil {
		return nil, err
	}
	kr := s.st.keyring.Load()
	headSeq, headHash := s.st.runner.Head()
	logRep, err := audit.Verify(ctx, s.c.log.JetStream(), ledger.StreamName, audit.VerifyOptions{
		From: from, Keyring: kr, Checkpoints: s.st.audit.view.Checkpoints(), HeadSeq: headSeq, HeadHash: headHash,
	})
	if errors.Is(err, audit.ErrUnvouched) {
		return nil, engines.BadRequest("%s", err.Error())
	}
	if err != nil {
		return nil, err
	}
	auditRep, err := audit.Verify(ctx, s.c.log.JetStream(), audit.StreamName, audit.VerifyOptions{Keyring: kr, Retained: true, ChainPerSubject: true})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"ok": logRep.OK && auditRep.OK, "log": logRep, "audit_stream": auditRep}}, nil
}

func (s *sysBackend) auditFilter(req *engines.Request) (audit.Filter, error) {
	var f audit.Filter
	var err error
	if f.Path, err = engines.String(req.Data, "path", ""); err != nil {
		return f, err
	}
	if f.Accessor, err = engines.String(req.Data, "accessor", ""); err != nil {
		return f, err
	}
	if f.ExcludePath, err = engines.String(req.Data, "exclude_path", ""); err != nil {
		return f, err
	}
	if f.ErrorsOnly, err = engines.Bool(req.Data, "errors_only", false); err != nil {
		return f, err
	}
	if f.Since, err = timeParam(req.Data, "since", req.Now); err != nil {
		return f, err
	}
	if f.Until, err = timeParam(req.Data, "until", req.Now); err != nil {
		return f, err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return f, engines.BadRequest("until (%s) is before since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
	}
	return f, nil
}

func (s *sysBackend) auditTail(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	f, err := s.auditFilter(req)
	if err != nil {
		return nil, err
	}
	n, err := engines.Int(req.Data, "n", 20)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > 1000 {
		return nil, engines.BadRequest("n must be between 1 and 1000")
	}
	warnings := s.flushAuditSpool()
	r := audit.Reader{JS: s.c.log.JetStream(), Keyring: s.st.keyring.Load()}
	cur, err := engines.String(req.Data, "cursor", "")
	if err != nil {
		return nil, err
	}
	var entries []audit.Entry
	var next audit.Cursor
	if cur == "" {
		entries, next, err = r.Tail(ctx, n, f)
	} else {
		c, perr := audit.ParseCursor(cur)
		if perr != nil {
			return nil, engines.BadRequest("%s", perr.Error())
		}
		entries, next, err = r.Follow(ctx, c, f, 1000)
	}
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"records": entries, "cursor": next.String()}, Warnings: warnings}, nil
}

func (s *sysBackend) auditQuery(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	f, err := s.auditFilter(req)
	if err != nil {
		return nil, err
	}
	limit, err := engines.Int(req.Data, "limit", 1000)
	if err != nil {
		return nil, err
	}
	if limit < 1 || limit > 10000 {
		return nil, engines.BadRequest("limit must be between 1 and 10000")
	}
	warnings := s.flushAuditSpool()
	r := audit.Reader{JS: s.c.log.JetStream(), Keyring: s.st.keyring.Load()}
	entries, truncated, err := r.Query(ctx, f, limit)
	if err != nil {
		return nil, err
	}
	return &engines.Response{Data: map[string]any{"records": entries, "truncated": truncated}, Warnings: warnings}, nil
}

// auditFlushWait bounds how long a tail or query waits for this node's spooled records.
const auditFlushWait = 2 * time.Second

// flushAuditSpool lets the records this node has spooled so far reach the audit stream before
// it is read, so that a tail or query right after a request shows that request; when they
// cannot (JetStream unreachable), the answer says so rather than look complete.
func (s *sysBackend) flushAuditSpool() []string {
	st := s.st.audit
	if st == nil || st.stream == nil {
		return nil
	}
	if left := st.stream.Flush(auditFlushWait); left > 0 {
		return []string{fmt.Sprintf("%d groups of audit records of this node are not yet stored in JetStream and are not in this answer; they are stored once it takes them (see ledger_audit_spool_backlog in sys/metrics)", left)}
	}
	return nil
}

func uintParam(data map[string]any, key string) (uint64, error) {
	s, err := engines.String(data, key, "")
	if err != nil || s == "" {
		return 0, err
	}
	v, perr := strconv.ParseUint(s, 10, 64)
	if perr != nil {
		return 0, engines.BadRequest("field %q: expected a sequence number", key)
	}
	return v, nil
}

// timeParam reads an RFC 3339 time, unix seconds, or a duration meaning that long before now.
func timeParam(data map[string]any, key string, now time.Time) (time.Time, error) {
	s, err := engines.String(data, key, "")
	if err != nil || s == "" {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	if d, err := engines.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	return time.Time{}, engines.BadRequest("field %q: expected an RFC 3339 time, unix seconds, or a duration such as \"15m\" (that long ago)", key)
}
