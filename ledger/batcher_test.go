package ledger

import (
	"context"
	"errors"
	"sync"
	"testing"
)

func TestBatcher(t *testing.T) {
	tests := []struct {
		name     string
		maxMsg   int
		sizes    []int
		storeErr error
		// wantBatches is how many stores the queued requests take, given the size cap.
		wantBatches int
	}{
		{name: "one batch", maxMsg: 1000, sizes: []int{100, 100, 100}, wantBatches: 1},
		{name: "oversize carried over", maxMsg: 250, sizes: []int{100, 100, 100}, wantBatches: 2},
		{name: "store error reaches every append", maxMsg: 1000, sizes: []int{100, 100}, storeErr: ErrConflict, wantBatches: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var stored [][]*appendReq
			b := newBatcher(tc.maxMsg, "outcome unknown", func(batch []*appendReq, count int) (uint64, error) {
				mu.Lock()
				defer mu.Unlock()
				if got := len(batchEvents(batch, count)); got != count {
					t.Errorf("batch holds %d events, count says %d", got, count)
				}
				stored = append(stored, batch)
				return uint64(len(stored)), tc.storeErr
			})
			// Queue every request before the writer runs, so the batch boundaries are deterministic.
			reqs := make([]*appendReq, len(tc.sizes))
			for i, size := range tc.sizes {
				reqs[i] = &appendReq{size: size, events: make([]StoredEvent, 2), done: make(chan appendResult, 1)}
				b.reqs <- reqs[i]
			}
			go b.run()
			for i, r := range reqs {
				res := <-r.done
				if tc.storeErr != nil {
					if !errors.Is(res.err, tc.storeErr) {
						t.Fatalf("request %d: err %v, want %v", i, res.err, tc.storeErr)
					}
					continue
				}
				if res.err != nil || len(res.positions) != 2 {
					t.Fatalf("request %d: %v, %v", i, res.positions, res.err)
				}
				if p := res.positions[1]; p.Index != res.positions[0].Index+1 {
					t.Errorf("request %d: positions %v not consecutive", i, res.positions)
				}
			}
			if !b.close() {
				t.Fatal("first close reported already closed")
			}
			if b.close() {
				t.Fatal("second close reported first")
			}
			if _, err := b.submit(context.Background(), &appendReq{done: make(chan appendResult, 1)}); !errors.Is(err, ErrClosed) {
				t.Fatalf("submit after close: %v, want ErrClosed", err)
			}
			if len(stored) != tc.wantBatches {
				t.Fatalf("%d stores, want %d", len(stored), tc.wantBatches)
			}
		})
	}
}
