package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// Checkpoint vouches for the log's hash chain: the batch at Seq hashed to Hash. It is stored
// sealed, so only a holder of the keyring can write one; rewriting the log before Seq changes
// the hash at Seq and contradicts it.
type Checkpoint struct {
	Seq    uint64    `json:"seq"`
	Hash   string    `json:"hash"`   // hex SHA-256 of the batch message at Seq
	Events uint64    `json:"events"` // events in the log up to and including Seq
	Time   time.Time `json:"time"`
	// At is where the checkpoint itself sits (set by the view).
	At ledger.Position `json:"at"`
}

// View is the audit view: the enabled audit devices and the checkpoints. It implements
// projections.View.
type View struct {
	mu          sync.RWMutex
	devices     map[string]Device // by path
	checkpoints []Checkpoint      // in log order
	events      uint64            // events applied, in total
	sinceCP     uint64            // events applied since the last checkpoint, not counting it
	changed     chan struct{}     // closed when the set of devices changes
	due         chan struct{}     // closed when sinceCP reaches dueAt
	dueAt       uint64
}

// NewView returns an empty audit view.
func NewView() *View {
	return &View{devices: map[string]Device{}, changed: make(chan struct{}), due: make(chan struct{})}
}

// Name implements projections.View.
func (v *View) Name() string { return "audit" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.events++
	switch rec.Type {
	case DeviceEnabled:
		var d Device
		if err := json.Unmarshal(rec.Payload, &d); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if d.LogStart == 0 {
			d.LogStart = rec.Pos.Seq
		}
		if _, exists := v.devices[d.Path]; exists {
			return nil // enabled twice concurrently: the first one stands
		}
		v.devices[d.Path] = d
		v.notifyLocked()
	case DeviceDisabled:
		var p DisabledPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		if d, ok := v.devices[p.Path]; ok && (p.UUID == "" || p.UUID == d.UUID) {
			delete(v.devices, p.Path)
			v.notifyLocked()
		}
	case Checkpointed:
		var c Checkpoint
		if err := json.Unmarshal(rec.Payload, &c); err != nil {
			return fmt.Errorf("decode: %w", err)
		}
		c.At = rec.Pos
		v.checkpoints = append(v.checkpoints, c)
		v.sinceCP = 0
		return nil
	}
	v.sinceCP++
	if v.dueAt > 0 && v.sinceCP >= v.dueAt {
		close(v.due)
		v.due = make(chan struct{})
		v.dueAt = 0
	}
	return nil
}

func (v *View) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change to the set of devices.
func (v *View) Changed() <-chan struct{} {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.changed
}

// DueAfter returns a channel closed once n events have been applied since the last checkpoint
// (at once if they already have).
func (v *View) DueAfter(n uint64) <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.sinceCP >= n {
		ch := make(chan struct{})
		close(ch)
		return ch
	}
	v.dueAt = n
	return v.due
}

// SinceCheckpoint is the number of events applied since the last checkpoint, and the last
// checkpoint (zero when there is none).
func (v *View) SinceCheckpoint() (uint64, Checkpoint) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var last Checkpoint
	if n := len(v.checkpoints); n > 0 {
		last = v.checkpoints[n-1]
	}
	return v.sinceCP, last
}

// Events is the number of events applied.
func (v *View) Events() uint64 {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.events
}

// Get returns the device at path (with trailing slash).
func (v *View) Get(path string) (Device, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	d, ok := v.devices[path]
	return d, ok
}

// Devices lists the enabled devices by path.
func (v *View) Devices() []Device {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]Device, 0, len(v.devices))
	for _, d := range v.devices {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// NonHMACKeys is the union of the enabled devices' audit_non_hmac_request_keys and
// audit_non_hmac_response_keys: what a record must keep in the clear for some device.
func (v *View) NonHMACKeys() (req, resp map[string]bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, d := range v.devices {
		for k := range listOpt(d.Options["audit_non_hmac_request_keys"]) {
			if req == nil {
				req = map[string]bool{}
			}
			req[k] = true
		}
		for k := range listOpt(d.Options["audit_non_hmac_response_keys"]) {
			if resp == nil {
				resp = map[string]bool{}
			}
			resp[k] = true
		}
	}
	return req, resp
}

// Checkpoints lists the checkpoints in log order.
func (v *View) Checkpoints() []Checkpoint {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return append([]Checkpoint(nil), v.checkpoints...)
}

// Vouched returns the checkpoint that covers exactly seq.
func (v *View) Vouched(seq uint64) (Checkpoint, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	i := sort.Search(len(v.checkpoints), func(i int) bool { return v.checkpoints[i].Seq >= seq })
	if i < len(v.checkpoints) && v.checkpoints[i].Seq == seq {
		return v.checkpoints[i], true
	}
	return Checkpoint{}, false
}

type viewState struct {
	Devices     map[string]Device `json:"devices"`
	Checkpoints []Checkpoint      `json:"checkpoints"`
	Events      uint64            `json:"events"`
	SinceCP     uint64            `json:"since_checkpoint"`
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte {
	b, _ := v.Snapshot()
	return sha256.Sum256(b)
}

// Snapshot implements projections.View.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return json.Marshal(viewState{Devices: v.devices, Checkpoints: v.checkpoints, Events: v.events, SinceCP: v.sinceCP})
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s viewState
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore audit view: %w", err)
	}
	if s.Devices == nil {
		s.Devices = map[string]Device{}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.devices, v.checkpoints, v.events, v.sinceCP = s.Devices, s.Checkpoints, s.Events, s.SinceCP
	v.notifyLocked()
	return nil
}

// HashHex renders a batch hash as checkpoints store it.
func HashHex(h [32]byte) string { return hex.EncodeToString(h[:]) }

func sortStatus(s []DeviceStatus) {
	sort.Slice(s, func(i, j int) bool { return s[i].Path < s[j].Path })
}
