package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
)

// Manager runs the enabled audit devices while the node is unsealed. Each device is a pair of
// durable JetStream consumers — one over the log, which delivers the write records that travel
// in the writes' own batches (every other event is skipped, never emitted), one over
// LEDGER_AUDIT, the reads and denials — feeding one sink.
//
// Exactly once, in order, per stream: a device fetches a batch of messages, writes their entries
// to its sink and only then acknowledges them (AckAll), holding the batch and retrying with
// backoff while the sink fails, so the sink never sees a later record before an earlier one.
// After a restart the consumers are reset to their acknowledgement floor, and the device skips
// entries its sink already holds: it remembers the last position written per stream, and a
// file sink reads it back from its own tail (each entry carries its position), which covers a
// crash between the write and the acknowledgement. Requests never wait for a device: a device
// that is down or slow lags, logs, and catches up when it can.
type Manager struct {
	js      jetstream.JetStream
	view    *View
	keyring func() *ledger.Keyring
	log     *slog.Logger
	product string // Ledger's version, for the SIEM formats' product fields

	mu      sync.Mutex
	running map[string]*device // by device UUID
}

// WithProduct sets the product version the SIEM formats (ocsf, ecs, cef) report. Call before
// Run.
func (m *Manager) WithProduct(version string) *Manager {
	m.product = version
	return m
}

// NewManager returns a manager of the devices in view. keyring returns the current keyring (it
// opens the sealed records and keys the HMACs a device adds).
func NewManager(js jetstream.JetStream, view *View, keyring func() *ledger.Keyring, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Manager{js: js, view: view, keyring: keyring, log: logger, running: map[string]*device{}}
}

// Run starts and stops devices as they are enabled and disabled, until ctx ends; it then stops
// them all (their consumers stay, to resume at the next unseal).
func (m *Manager) Run(ctx context.Context) {
	for {
		changed := m.view.Changed()
		m.sync(ctx)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			devs := m.running
			m.running = map[string]*device{}
			m.mu.Unlock()
			for _, d := range devs {
				d.stop()
			}
			return
		case <-changed:
		}
	}
}

func (m *Manager) sync(ctx context.Context) {
	want := map[string]Device{}
	for _, d := range m.view.Devices() {
		want[d.UUID] = d
	}
	m.mu.Lock()
	var gone []*device
	for id, d := range m.running {
		if _, ok := want[id]; !ok {
			gone = append(gone, d)
			delete(m.running, id)
		}
	}
	for id, d := range want {
		if _, ok := m.running[id]; ok {
			continue
		}
		dev, err := m.newDevice(d)
		if err != nil {
			m.log.Error("audit device cannot start", "path", d.Path, "type", d.Type, "err", err)
			continue
		}
		m.running[id] = dev
		dev.start(ctx)
	}
	m.mu.Unlock()
	for _, d := range gone {
		d.stop()
		m.log.Info("audit device disabled", "path", d.d.Path)
	}
	m.dropConsumers(ctx, want)
}

// dropConsumers deletes the consumers of devices that are no longer enabled (disabled here, or
// elsewhere while this node was sealed).
func (m *Manager) dropConsumers(ctx context.Context, want map[string]Device) {
	keep := map[string]bool{}
	for _, d := range want {
		keep[d.ConsumerName()] = true
	}
	for _, name := range []string{ledger.StreamName, StreamName} {
		s, err := m.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		names := s.ConsumerNames(ctx)
		var drop []string
		for n := range names.Name() {
			if strings.HasPrefix(n, consumerPrefix) && !keep[n] {
				drop = append(drop, n)
			}
		}
		for _, n := range drop {
			if err := s.DeleteConsumer(ctx, n); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && ctx.Err() == nil {
				m.log.Warn("delete consumer of disabled audit device", "stream", name, "consumer", n, "err", err)
			}
		}
	}
}

// Reopen makes every device reopen its file or connection at its next write (SIGHUP, after
// log rotation).
func (m *Manager) Reopen() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, d := range m.running {
		d.sink.Reopen()
	}
}

// DeviceStatus is the health of one audit device: what the server logs when a device fails,
// and what a metrics endpoint would export (counters Delivered and Failures, gauge Pending).
type DeviceStatus struct {
	Path         string     `json:"path"`
	Type         string     `json:"type"`
	Healthy      bool       `json:"healthy"`
	Delivered    uint64     `json:"delivered"` // entries written since unseal
	Failures     uint64     `json:"failures"`  // failed write attempts since unseal
	LastError    string     `json:"last_error,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	// Pending is the number of messages (batches) of both streams not yet acknowledged.
	Pending       uint64    `json:"pending"`
	LogPosition   *Position `json:"log_position,omitempty"`
	AuditPosition *Position `json:"audit_position,omitempty"`
}

// Status reports every running device.
func (m *Manager) Status(ctx context.Context) []DeviceStatus {
	m.mu.Lock()
	devs := make([]*device, 0, len(m.running))
	for _, d := range m.running {
		devs = append(devs, d)
	}
	m.mu.Unlock()
	out := make([]DeviceStatus, 0, len(devs))
	for _, d := range devs {
		out = append(out, d.status(ctx))
	}
	sortStatus(out)
	return out
}

// device is one running audit device.
type device struct {
	d       Device
	set     Settings
	sink    sink
	js      jetstream.JetStream
	keyring func() *ledger.Keyring
	log     *slog.Logger
	product string
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	delivered atomic.Uint64
	failures  atomic.Uint64

	mu       sync.Mutex // serialises sink writes; guards what follows
	last     map[string]written
	failing  map[string]time.Time // by stream: since when its delivery fails
	lastErr  string
	lastWarn time.Time
}

func (m *Manager) newDevice(d Device) (*device, error) {
	s, err := ParseSettings(d.Type, d.Options)
	if err != nil {
		return nil, err
	}
	var own *nats.Conn
	if m.js != nil {
		own = m.js.Conn()
	}
	sk, err := newSink(d, s, own)
	if err != nil {
		return nil, err
	}
	dev := &device{d: d, set: s, sink: sk, js: m.js, keyring: m.keyring, log: m.log, product: m.product, last: map[string]written{}, failing: map[string]time.Time{}}
	if r, ok := sk.(resumer); ok {
		last, err := r.Resume()
		if err != nil {
			m.log.Warn("audit device: cannot read back what its file holds; records written just before a crash may repeat", "path", d.Path, "err", err)
		}
		for k, v := range last {
			dev.last[k] = v
		}
	}
	return dev, nil
}

func (d *device) start(ctx context.Context) {
	ctx, d.cancel = context.WithCancel(ctx)
	logStart, auditStart := d.d.LogStart, d.d.AuditStart
	if d.set.Backfill {
		logStart, auditStart = 1, 1
	}
	for _, src := range []struct {
		stream string
		start  uint64
	}{{ledger.StreamName, logStart}, {StreamName, auditStart}} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.follow(ctx, src.stream, max(src.start, 1))
		}()
	}
}

func (d *device) stop() {
	d.cancel()
	d.wg.Wait()
	d.sink.Close()
}

// follow consumes one stream until ctx ends, starting over after a consumer failure.
func (d *device) follow(ctx context.Context, stream string, start uint64) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := d.consume(ctx, stream, start)
		if ctx.Err() != nil {
			return
		}
		d.failed(stream, fmt.Errorf("%s consumer: %w", stream, err))
		sleep(ctx, backoff)
		backoff = min(backoff*2, 30*time.Second)
	}
}

const (
	// maxRetryBackoff caps the wait between attempts at a failing sink: a sink that comes back
	// is written to within this long.
	maxRetryBackoff = 5 * time.Second
	fetchBatch      = 16
	idleWait        = 5 * time.Second
	ackWait         = 10 * time.Minute
)

func (d *device) consumerConfig(start uint64) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:     d.d.ConsumerName(),
		Description: fmt.Sprintf("audit device %s (%s)", d.d.Path, d.d.Type),
		AckPolicy:   jetstream.AckAllPolicy,
		AckWait:     ackWait,
		MaxDeliver:  -1,
	}
	if start <= 1 {
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	} else {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, start
	}
	return cfg
}

func (d *device) consume(ctx context.Context, stream string, start uint64) error {
	s, err := d.js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	cons, err := s.CreateOrUpdateConsumer(ctx, d.consumerConfig(start))
	if err != nil {
		return err
	}
	if info := cons.CachedInfo(); info != nil && info.NumAckPending > 0 {
		// Messages delivered before a crash or a seal but never acknowledged come first again,
		// ahead of anything newer, so the sink sees every record in order.
		seq := max(info.AckFloor.Stream+1, start)
		if _, err := s.ResetConsumerToSequence(ctx, d.d.ConsumerName(), seq); err != nil {
			return fmt.Errorf("reset to %d: %w", seq, err)
		}
	}
	idle := false
	for ctx.Err() == nil {
		msgs, err := d.fetch(ctx, cons, idle)
		if err != nil {
			return err
		}
		idle = len(msgs) == 0
		if idle {
			d.recovered(stream) // the consumer works and nothing waits for the sink
			continue
		}
		if err := d.deliver(ctx, stream, msgs); err != nil {
			return nil // ctx ended
		}
		// AckAll: this acknowledges the whole batch. A lost ack only means redelivery, which
		// the positions filter out.
		if err := msgs[len(msgs)-1].Ack(); err != nil && ctx.Err() == nil {
			d.log.Warn("audit device: acknowledgement failed; the batch will be skipped when delivered again", "path", d.d.Path, "stream", stream, "err", err)
		}
	}
	return nil
}

// fetch takes the next messages: idle, it waits (until ctx ends) for one; busy, it takes what
// is there (a few batches: a message is at most a few MB) without waiting for more.
func (d *device) fetch(ctx context.Context, cons jetstream.Consumer, idle bool) ([]jetstream.Msg, error) {
	var batch jetstream.MessageBatch
	var err error
	if idle {
		fctx, cancel := context.WithTimeout(ctx, idleWait)
		defer cancel()
		batch, err = cons.Fetch(1, jetstream.FetchContext(fctx))
	} else {
		batch, err = cons.FetchNoWait(fetchBatch)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil
		}
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && len(msgs) == 0 && ctx.Err() == nil && !errors.Is(err, jetstream.ErrNoMessages) &&
		!errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, err
	}
	return msgs, nil
}

// line is one entry ready for a sink.
type line struct {
	pos  Position
	part int
	data []byte
}

// deliver writes the entries of msgs to the sink, retrying with backoff until they are all
// written; it returns only when they are, or ctx's error.
func (d *device) deliver(ctx context.Context, stream string, msgs []jetstream.Msg) error {
	backoff := 100 * time.Millisecond
	for {
		lines, err := d.lines(stream, msgs)
		if err == nil {
			err = d.write(ctx, stream, lines)
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.failed(stream, err)
		if sleep(ctx, backoff) != nil {
			return ctx.Err()
		}
		backoff = min(backoff*2, maxRetryBackoff)
	}
}

// lines renders the audit entries in msgs. Only Recorded events become entries: a device
// emits nothing else from the log.
func (d *device) lines(stream string, msgs []jetstream.Msg) ([]line, error) {
	kr := d.keyring()
	if kr == nil {
		return nil, ledger.ErrSealed
	}
	var out []line
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("%s: metadata: %w", stream, err)
		}
		seq := md.Sequence.Stream
		b, err := ledger.DecodeBatch(seq, m.Data())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", stream, err)
		}
		for i, se := range b.Events {
			if se.Type() != Recorded {
				continue
			}
			pos := Position{Stream: stream, Seq: seq, Index: uint32(i)}
			rec, err := se.Open(kr, ledger.Position{Seq: seq, Index: uint32(i)})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", stream, err)
			}
			r, err := Decode(rec.Payload)
			if err != nil {
				return nil, fmt.Errorf("%s seq %d: %w", stream, seq, err)
			}
			entries := r.Entries(kr, d.set.Format, &pos)
			if d.set.Output != "" && d.set.Output != OutputJSON {
				// One line per record, from the response entry (it holds the request too).
				entries = entries[1:]
			}
			for part, e := range entries {
				var b []byte
				if d.set.Output == "" || d.set.Output == OutputJSON {
					b, err = json.Marshal(e)
				} else {
					b, err = siemLine(d.set.Output, e, d.product)
				}
				if err != nil {
					return nil, fmt.Errorf("%s seq %d: encode entry: %w", stream, seq, err)
				}
				if d.set.Prefix != "" {
					b = append([]byte(d.set.Prefix), b...)
				}
				out = append(out, line{pos: pos, part: part, data: b})
			}
		}
	}
	return out, nil
}

func (d *device) write(ctx context.Context, stream string, lines []line) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	w, seen := d.last[stream]
	var todo []line
	for _, l := range lines {
		if !seen || after(l.pos, l.part, w.Pos, w.Part) {
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		d.recoveredLocked(stream)
		return nil
	}
	data := make([][]byte, len(todo))
	for i, l := range todo {
		data[i] = l.data
	}
	n, err := d.sink.Write(ctx, data)
	if n > 0 {
		d.last[stream] = written{Pos: todo[n-1].pos, Part: todo[n-1].part}
		d.delivered.Add(uint64(n))
	}
	if err != nil {
		return err
	}
	d.recoveredLocked(stream)
	return nil
}

func (d *device) recovered(stream string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recoveredLocked(stream)
}

// recoveredLocked clears a stream's failure, and logs when the whole device is healthy again.
func (d *device) recoveredLocked(stream string) {
	since, ok := d.failing[stream]
	if !ok {
		return
	}
	delete(d.failing, stream)
	if len(d.failing) == 0 {
		d.log.Info("audit device recovered; it is catching up", "path", d.d.Path, "type", d.d.Type,
			"failed_for", time.Since(since).Round(time.Millisecond))
		d.lastErr = ""
	}
}

// failed records a failed attempt on one stream and logs it: at once the first time, then
// every 30 seconds while the device keeps failing.
func (d *device) failed(stream string, err error) {
	d.failures.Add(1)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lastErr = err.Error()
	now := time.Now()
	if _, ok := d.failing[stream]; !ok {
		d.failing[stream] = now
	}
	since := d.failingSinceLocked()
	if now.Sub(d.lastWarn) >= 30*time.Second {
		d.lastWarn = now
		d.log.Warn("audit device failing; requests go on, and its records wait in the streams until it recovers",
			"path", d.d.Path, "type", d.d.Type, "err", err, "failing_for", now.Sub(since).Round(time.Millisecond))
	}
}

func (d *device) failingSinceLocked() time.Time {
	var first time.Time
	for _, t := range d.failing {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	return first
}

func (d *device) status(ctx context.Context) DeviceStatus {
	st := DeviceStatus{Path: d.d.Path, Type: d.d.Type, Delivered: d.delivered.Load(), Failures: d.failures.Load()}
	d.mu.Lock()
	st.Healthy, st.LastError = len(d.failing) == 0, d.lastErr
	if !st.Healthy {
		t := d.failingSinceLocked()
		st.FailingSince = &t
	}
	if w, ok := d.last[ledger.StreamName]; ok {
		p := w.Pos
		st.LogPosition = &p
	}
	if w, ok := d.last[StreamName]; ok {
		p := w.Pos
		st.AuditPosition = &p
	}
	d.mu.Unlock()
	for _, name := range []string{ledger.StreamName, StreamName} {
		c, err := d.js.Consumer(ctx, name, d.d.ConsumerName())
		if err != nil {
			continue
		}
		if info, err := c.Info(ctx); err == nil {
			st.Pending += info.NumPending + uint64(info.NumAckPending)
		}
	}
	return st
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
