package commands

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/events"
)

// EventsOptions configure the change events published on NATS subjects.
type EventsOptions struct {
	// NATSPrefix turns publishing on: each change event goes to <prefix>.<event type with '/'
	// as '.'>, e.g. ledger.events.kv-v2.data-write. Empty: off.
	NATSPrefix string
	// NATSURL is the NATS server to publish on; empty: the node's own (embedded or configured).
	NATSURL string
}

// EventSubject is the NATS subject of an event type under prefix.
func EventSubject(prefix, eventType string) string {
	return prefix + "." + strings.ReplaceAll(eventType, "/", ".")
}

// publishEvents is the active node's NATS publisher of change events (a duty: runDuties starts
// it on promotion and stops it on demotion, so one node publishes). Its cursor is a durable
// consumer of the log, replicated with the log: every start — a restart, a NATS outage, a
// failover — resumes just after the last batch acknowledged as published (the ack floor), so
// nothing is skipped, even a batch the previous active node had fetched and not published. It
// publishes every committed change after the local views applied it, each message carrying the
// event id as Nats-Msg-Id: what a node published but had not acknowledged when it stopped is
// published again by its successor, and a JetStream stream on those subjects drops the repeat.
//
// from is the last sequence the views had applied when the duty began; a cursor created now
// (the first start) begins after it, not at whatever the log holds once the consumer exists —
// under load that is seconds later, and the changes committed meanwhile would be skipped.
func (c *Core) publishEvents(ctx context.Context, st *unsealed, from uint64) {
	o := c.opts.Events
	if o.NATSPrefix == "" {
		return
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := c.publishEventsOnce(ctx, st, o, from)
		if ctx.Err() != nil {
			return
		}
		c.logger.Warn("change events: NATS publisher failing; events wait in the log until it recovers", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 10*time.Second)
	}
}

// eventsConsumer names the durable consumer of one prefix.
func eventsConsumer(prefix string) string {
	h := sha256.Sum256([]byte(prefix))
	return "EVENTS_NATS_" + hex.EncodeToString(h[:6])
}

func (c *Core) publishEventsOnce(ctx context.Context, st *unsealed, o EventsOptions, from uint64) error {
	nc := c.log.JetStream().Conn()
	if o.NATSURL != "" {
		own, err := nats.Connect(o.NATSURL, nats.Name("ledger change events"), nats.MaxReconnects(-1))
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer own.Close()
		nc = own
	}
	cons, err := c.eventsCursor(ctx, o.NATSPrefix, from)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(64, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("fetch: %w", err)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		cancel()
		if len(msgs) == 0 {
			continue
		}
		for _, m := range msgs {
			if err := c.publishBatch(ctx, st, nc, o.NATSPrefix, m); err != nil {
				return err
			}
		}
		fctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		err = nc.FlushWithContext(fctx)
		cancel()
		if err != nil {
			return fmt.Errorf("flush: %w", err)
		}
		if err := msgs[len(msgs)-1].Ack(); err != nil && ctx.Err() == nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return nil
}

func (c *Core) publishBatch(ctx context.Context, st *unsealed, nc *nats.Conn, prefix string, m jetstream.Msg) error {
	md, err := m.Metadata()
	if err != nil {
		return err
	}
	b, err := ledger.DecodeBatch(md.Sequence.Stream, m.Data())
	if err != nil {
		return err
	}
	if err := st.runner.WaitFor(ctx, b.Seq); err != nil {
		return err
	}
	kr := st.keyring.Load()
	for i, se := range b.Events {
		if !events.Relevant(se.Type()) {
			continue
		}
		rec, err := se.Open(kr, ledger.Position{Seq: b.Seq, Index: uint32(i)})
		if err != nil {
			return err
		}
		ev, ok, err := events.Translate(rec, st.mounts)
		if err != nil || !ok {
			if err != nil {
				c.logger.Warn("change events: skipping an event that does not decode", "seq", b.Seq, "index", i, "err", err)
			}
			continue
		}
		ev.Type = ev.EventType()
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		msg := nats.NewMsg(EventSubject(prefix, ev.EventType()))
		msg.Data = data
		msg.Header.Set(nats.MsgIdHdr, ev.ID)
		if err := nc.PublishMsg(msg); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	return nil
}

// eventsCursor opens the publisher's durable consumer positioned just after its ack floor.
// First start: just after from (what the views held when this node's duties began). A later start recreates it at the ack floor, so
// batches delivered to a publisher that stopped before acknowledging them (a failed-over
// active node; they would wait out the ack wait, and a later acknowledgement of everything up
// to a newer batch would skip them) are delivered again at once, in order.
func (c *Core) eventsCursor(ctx context.Context, prefix string, from uint64) (jetstream.Consumer, error) {
	js := c.log.JetStream()
	name := eventsConsumer(prefix)
	cfg := jetstream.ConsumerConfig{
		Durable: name, Description: "change events to NATS subjects " + prefix + ".>",
		AckPolicy: jetstream.AckAllPolicy, AckWait: 10 * time.Minute, MaxDeliver: -1,
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from + 1,
	}
	cons, err := js.Consumer(ctx, ledger.StreamName, name)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		return js.CreateConsumer(ctx, ledger.StreamName, cfg)
	case err != nil:
		return nil, err
	}
	info := cons.CachedInfo()
	if info.NumAckPending == 0 && info.Delivered.Stream == info.AckFloor.Stream {
		return cons, nil // nothing delivered and left unacknowledged
	}
	if err := js.DeleteConsumer(ctx, ledger.StreamName, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, err
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1
	return js.CreateConsumer(ctx, ledger.StreamName, cfg)
}
