// Package lease is the lease view: every dynamic secret's lease with its issue and expiry
// times, its owner token and the sealed data needed to undo it, indexed by expiry for the
// expiration manager and by owner token so revoking a token finds its leases.
package lease

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types.
const (
	Issued           = "lease.issued.v1"
	Renewed          = "lease.renewed.v1"
	Revoked          = "lease.revoked.v1" // only after the side effect was undone (or forced)
	RevocationFailed = "lease.revocation_failed.v1"
)

// IssuedPayload registers a lease.
type IssuedPayload struct {
	ID           string    `json:"id"`
	MountUUID    string    `json:"mount_uuid"`
	MountPath    string    `json:"mount_path"`
	Path         string    `json:"path"`
	TokenMAC     string    `json:"token_mac,omitempty"`
	IssueTime    time.Time `json:"issue_time"`
	ExpireTime   time.Time `json:"expire_time"`
	MaxExpire    time.Time `json:"max_expire"`
	Renewable    bool      `json:"renewable"`
	InternalData []byte    `json:"internal_data,omitempty"`
}

// RenewedPayload moves a lease's expiry.
type RenewedPayload struct {
	ID         string    `json:"id"`
	ExpireTime time.Time `json:"expire_time"`
	RenewTime  time.Time `json:"renew_time"`
}

// RevokedPayload ends a lease. Reason: "revoked", "expired", "token revoked", "prefix",
// "forced" (revoke-force: forgotten without undoing anything), "rolled back".
type RevokedPayload struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// FailedPayload records that undoing a lease failed; the manager keeps retrying.
type FailedPayload struct {
	ID       string    `json:"id"`
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	Time     time.Time `json:"time"`
}

// Entry is a live lease.
type Entry struct {
	IssuedPayload
	LastRenewal time.Time `json:"last_renewal"`
	LastError   string    `json:"last_error,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
}

// View holds the live leases.
type View struct {
	mu      sync.RWMutex
	byID    map[string]*Entry
	byToken map[string]map[string]bool
	expiry  expiryHeap
	at      map[string]*item
}

// New returns an empty lease view.
func New() *View {
	return &View{byID: map[string]*Entry{}, byToken: map[string]map[string]bool{}, at: map[string]*item{}}
}

// Name implements projections.View.
func (v *View) Name() string { return "lease" }

// Apply implements projections.View.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Issued:
		var p IssuedPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil || p.ID == "" {
			return fmt.Errorf("decode %s: malformed", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.remove(p.ID)
		v.add(&Entry{IssuedPayload: p})
	case Renewed:
		var p RenewedPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode %s: malformed", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if e, ok := v.byID[p.ID]; ok {
			n := *e
			n.ExpireTime, n.LastRenewal = p.ExpireTime, p.RenewTime
			v.byID[p.ID] = &n
			v.setExpiry(p.ID, p.ExpireTime)
		}
	case Revoked:
		var p RevokedPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode %s: malformed", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.remove(p.ID)
	case mount.Moved:
		var p mount.MovedPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode %s: malformed", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.move(p)
	case RevocationFailed:
		var p FailedPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return fmt.Errorf("decode %s: malformed", rec.Type)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if e, ok := v.byID[p.ID]; ok {
			n := *e
			n.LastError, n.Attempts = p.Error, p.Attempts
			v.byID[p.ID] = &n
		}
	}
	return nil
}

// move renames the leases of a moved mount, as Vault does: the ID's mount prefix changes.
func (v *View) move(p mount.MovedPayload) {
	var ids []string
	for id, e := range v.byID {
		if e.MountUUID == p.UUID && strings.HasPrefix(id, p.From) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		n := *v.byID[id]
		v.remove(id)
		n.ID = p.To + strings.TrimPrefix(id, p.From)
		n.MountPath = p.To
		v.add(&n)
	}
}

func (v *View) add(e *Entry) {
	v.byID[e.ID] = e
	if e.TokenMAC != "" {
		if v.byToken[e.TokenMAC] == nil {
			v.byToken[e.TokenMAC] = map[string]bool{}
		}
		v.byToken[e.TokenMAC][e.ID] = true
	}
	v.setExpiry(e.ID, e.ExpireTime)
}

func (v *View) remove(id string) {
	e, ok := v.byID[id]
	if !ok {
		return
	}
	delete(v.byID, id)
	if set := v.byToken[e.TokenMAC]; set != nil {
		delete(set, id)
		if len(set) == 0 {
			delete(v.byToken, e.TokenMAC)
		}
	}
	v.setExpiry(id, time.Time{})
}

// Get returns a lease by ID.
func (v *View) Get(id string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	e, ok := v.byID[id]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// ByToken lists the IDs of the leases a token owns, sorted.
func (v *View) ByToken(mac string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]string, 0, len(v.byToken[mac]))
	for id := range v.byToken[mac] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// WithPrefix lists the IDs starting with prefix, sorted.
func (v *View) WithPrefix(prefix string) []string {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []string
	for id := range v.byID {
		if strings.HasPrefix(id, prefix) {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// Children lists what is directly under prefix, as LIST does: IDs' next segment, with folders
// ending in "/".
func (v *View) Children(prefix string) []string {
	seen := map[string]bool{}
	for _, id := range v.WithPrefix(prefix) {
		rest := strings.TrimPrefix(id, prefix)
		if i := strings.Index(rest, "/"); i >= 0 {
			rest = rest[:i+1]
		}
		seen[rest] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Len counts live leases.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.byID)
}

// Expiring returns up to limit leases whose expiry is at or before now, earliest first.
func (v *View) Expiring(now time.Time, limit int) []Entry {
	v.mu.RLock()
	defer v.mu.RUnlock()
	// Walk the heap in order without disturbing it.
	var out []Entry
	cand := expiryHeap{}
	if len(v.expiry) > 0 {
		heap.Push(&cand, &item{id: v.expiry[0].id, at: v.expiry[0].at, src: 0})
	}
	for cand.Len() > 0 && len(out) < limit {
		top := heap.Pop(&cand).(*item)
		if top.at.After(now) {
			break
		}
		out = append(out, *v.byID[top.id])
		for _, c := range []int{2*top.src + 1, 2*top.src + 2} {
			if c < len(v.expiry) {
				it := &item{id: v.expiry[c].id, at: v.expiry[c].at, src: c}
				heap.Push(&cand, it)
			}
		}
	}
	return out
}

// NextExpiry is the earliest expiry, if any lease is live.
func (v *View) NextExpiry() (time.Time, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if len(v.expiry) == 0 {
		return time.Time{}, false
	}
	return v.expiry[0].at, true
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Snapshot implements projections.View: leases sorted by ID.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	list := make([]*Entry, 0, len(v.byID))
	for _, e := range v.byID {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	return json.Marshal(list)
}

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var list []*Entry
	if err := json.Unmarshal(data, &list); err != nil {
		return fmt.Errorf("restore lease view: %w", err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.byID, v.byToken, v.expiry, v.at = map[string]*Entry{}, map[string]map[string]bool{}, nil, map[string]*item{}
	for _, e := range list {
		v.add(e)
	}
	return nil
}

type item struct {
	id  string
	at  time.Time
	idx int
	src int // index in the view's heap, for ordered walks
}

type expiryHeap []*item

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].id < h[j].id
}
func (h expiryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].idx = i; h[j].idx = j }
func (h *expiryHeap) Push(x any)   { it := x.(*item); it.idx = len(*h); *h = append(*h, it) }
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (v *View) setExpiry(id string, t time.Time) {
	it, ok := v.at[id]
	switch {
	case t.IsZero() && ok:
		heap.Remove(&v.expiry, it.idx)
		delete(v.at, id)
	case t.IsZero():
	case ok:
		it.at = t
		heap.Fix(&v.expiry, it.idx)
	default:
		it = &item{id: id, at: t}
		heap.Push(&v.expiry, it)
		v.at[id] = it
	}
}
