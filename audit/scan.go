package audit

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Scan calls fn with every audit record stored at or after since (zero: all), stream by stream
// (the log's write records, then LEDGER_AUDIT's reads and denials), each in stream order. It
// keeps nothing: what `ledger incident` folds over a large trail without holding it. An error
// from fn stops the scan and is returned.
func (r Reader) Scan(ctx context.Context, since time.Time, fn func(Position, Record) error) error {
	for _, name := range recordStreams {
		s, err := r.JS.Stream(ctx, name)
		if err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return fmt.Errorf("scan %s: %w", name, err)
		}
		if info.State.Msgs == 0 {
			continue
		}
		cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
		if !since.IsZero() {
			t := since
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		}
		var ferr error
		err = scanWith(ctx, r.JS, name, cfg, info.State.LastSeq, func(seq uint64, _ time.Time, data []byte) error {
			return r.records(name, seq, data, func(p Position, rec Record) {
				if ferr == nil && (since.IsZero() || !rec.Time.Before(since)) {
					ferr = fn(p, rec)
				}
			})
		})
		if err == nil {
			err = ferr
		}
		if err != nil {
			return err
		}
	}
	return nil
}
