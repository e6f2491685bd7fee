// Package token is the token view: every live token by the HMAC of its string, with indexes by
// accessor, by parent (for revoking a tree) and by expiry (for the expiration manager). The
// token strings themselves never reach the view, the log or a snapshot: only their MACs.
//
// The view is dumb on purpose. It folds exactly what the events say: revoking a tree is one
// Revoked event per token, decided by the token engine, so replay never has to re-derive a
// decision from state that may have changed since.
package token

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections"
)

// Entry is one live token. It carries the CreatedPayload it was created with, except that TTL
// and ExpireTime follow renewals (CreationTTL keeps the TTL at creation, as Vault's
// creation_ttl does) and ParentMAC/Orphan change when the parent is revoked in orphan mode.
//
// Entries are returned by value, but Policies, BoundCIDRs and Meta are shared with the view:
// callers must treat them as read-only (copy before changing). Apply never mutates them in
// place, so a caller holding an Entry never sees them change under it.
type Entry struct {
	CreatedPayload
	CreationTTL time.Duration `json:"creation_ttl"`
	LastRenewal time.Time     `json:"last_renewal"`
	// UsesLeft counts the requests a limited-use token may still make; 0 with NumUses 0 means
	// unlimited. A limited token leaves the view when it reaches 0.
	UsesLeft int `json:"uses_left"`
}

// Expires reports whether the token has an expiry (root tokens may not).
func (e Entry) Expires() bool { return !e.ExpireTime.IsZero() }

// Expired reports whether the token's expiry is at or before now. A token stays in the view
// until the expiration manager appends its Revoked event; readers use Expired to refuse it in
// the meantime.
func (e Entry) Expired(now time.Time) bool { return e.Expires() && !e.ExpireTime.After(now) }

// View is the token view. Reads take a read lock and allocate only for list results.
type View struct {
	mu         sync.RWMutex
	byMAC      map[string]*Entry
	byAccessor map[string]string              // accessor → MAC
	children   map[string]map[string]struct{} // parent MAC → child MACs
	expiry     expiryHeap                     // tokens with an ExpireTime
	expiryAt   map[string]*expiryItem         // MAC → its heap item
	roles      map[string]Role                // token roles by name
}

// New returns an empty token view.
func New() *View {
	v := &View{}
	v.reset()
	return v
}

func (v *View) reset() {
	v.byMAC = map[string]*Entry{}
	v.byAccessor = map[string]string{}
	v.children = map[string]map[string]struct{}{}
	v.expiry = nil
	v.expiryAt = map[string]*expiryItem{}
	v.roles = map[string]Role{}
}

// Name implements projections.View.
func (v *View) Name() string { return "token" }

// errMalformed marks payloads the view cannot accept.
var errMalformed = errors.New("malformed token event")

// Apply implements projections.View. Events for tokens the view does not hold (revoked twice,
// renewed after revocation) are ignored: the outcome is the same whichever arrives first.
func (v *View) Apply(rec ledger.Record) error {
	switch rec.Type {
	case Created:
		var p CreatedPayload
		if err := decode(rec.Payload, &p); err != nil {
			return err
		}
		if p.MAC == "" || p.Accessor == "" {
			return fmt.Errorf("%s without mac or accessor: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		if p.ParentMAC != "" && !p.Orphan {
			if _, ok := v.byMAC[p.ParentMAC]; !ok {
				// The parent was revoked between the child's decision and its append: a child
				// never outlives its parent, whichever order the two events land in.
				return nil
			}
		}
		v.add(p)
	case Renewed:
		var p RenewedPayload
		if err := decode(rec.Payload, &p); err != nil {
			return err
		}
		if p.MAC == "" {
			return fmt.Errorf("%s without mac: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.renew(p)
	case Used:
		var p UsedPayload
		if err := decode(rec.Payload, &p); err != nil {
			return err
		}
		if p.MAC == "" {
			return fmt.Errorf("%s without mac: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.use(p.MAC)
	case Revoked:
		var p RevokedPayload
		if err := decode(rec.Payload, &p); err != nil {
			return err
		}
		if p.MAC == "" {
			return fmt.Errorf("%s without mac: %w", rec.Type, errMalformed)
		}
		v.mu.Lock()
		defer v.mu.Unlock()
		v.remove(p.MAC, p.OrphanChildren)
	case RoleWritten, RoleDeleted:
		return v.applyRole(rec.Type, rec.Payload)
	}
	return nil
}

func decode(b []byte, into any) error {
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("decode: %w: %w", errMalformed, err)
	}
	return nil
}

func (v *View) add(p CreatedPayload) {
	if _, ok := v.byMAC[p.MAC]; ok {
		// Never decided by the engine (MACs of fresh random tokens); replace cleanly so the
		// indexes stay consistent with the entries whatever the log holds.
		v.remove(p.MAC, false)
	}
	e := &Entry{CreatedPayload: p, CreationTTL: p.TTL, UsesLeft: p.NumUses}
	if e.ParentMAC == "" {
		e.Orphan = true
	}
	v.index(e)
}

// index adds e to every index. Callers hold the write lock.
func (v *View) index(e *Entry) {
	v.byMAC[e.MAC] = e
	v.byAccessor[e.Accessor] = e.MAC
	if e.ParentMAC != "" {
		kids := v.children[e.ParentMAC]
		if kids == nil {
			kids = map[string]struct{}{}
			v.children[e.ParentMAC] = kids
		}
		kids[e.MAC] = struct{}{}
	}
	v.setExpiry(e.MAC, e.ExpireTime)
}

func (v *View) renew(p RenewedPayload) {
	old, ok := v.byMAC[p.MAC]
	if !ok {
		return
	}
	// Copy-on-write: an Entry handed out earlier keeps its values.
	e := *old
	e.TTL = p.TTL
	e.ExpireTime = p.ExpireTime
	e.LastRenewal = p.RenewTime
	v.byMAC[p.MAC] = &e
	v.setExpiry(p.MAC, p.ExpireTime)
}

func (v *View) use(mac string) {
	old, ok := v.byMAC[mac]
	if !ok || old.NumUses == 0 {
		return // unknown, or unlimited: nothing to count
	}
	if old.UsesLeft <= 1 {
		// Limited-use tokens cannot have children (the engine refuses), so orphaning is only a
		// guard against dangling parent links.
		v.remove(mac, true)
		return
	}
	e := *old
	e.UsesLeft--
	v.byMAC[mac] = &e
}

// remove drops a token and its index entries. With orphanChildren its children lose their
// parent; otherwise they are left as they are (the engine revokes them with their own events),
// and so is their entry in the children index, which is exactly what a rebuild from the
// entries would produce.
func (v *View) remove(mac string, orphanChildren bool) {
	e, ok := v.byMAC[mac]
	if !ok {
		return
	}
	delete(v.byMAC, mac)
	if v.byAccessor[e.Accessor] == mac {
		delete(v.byAccessor, e.Accessor)
	}
	if e.ParentMAC != "" {
		if kids := v.children[e.ParentMAC]; kids != nil {
			delete(kids, mac)
			if len(kids) == 0 {
				delete(v.children, e.ParentMAC)
			}
		}
	}
	v.setExpiry(mac, time.Time{})
	if !orphanChildren {
		// Cascade: descendants that joined after the revocation was decided go too. The engine
		// still emits one event per descendant it knew of; those find nothing left and are no-ops.
		kids := make([]string, 0, len(v.children[mac]))
		for kid := range v.children[mac] {
			kids = append(kids, kid)
		}
		sort.Strings(kids)
		delete(v.children, mac)
		for _, kid := range kids {
			v.remove(kid, false)
		}
		return
	}
	if orphanChildren {
		for kid := range v.children[mac] {
			if c, ok := v.byMAC[kid]; ok {
				orphan := *c
				orphan.ParentMAC = ""
				orphan.Orphan = true
				v.byMAC[kid] = &orphan
			}
		}
		delete(v.children, mac)
	}
}

// setExpiry places mac in the expiry heap at t, or takes it out for a zero t.
func (v *View) setExpiry(mac string, t time.Time) {
	it, ok := v.expiryAt[mac]
	switch {
	case t.IsZero() && ok:
		heap.Remove(&v.expiry, it.idx)
		delete(v.expiryAt, mac)
	case t.IsZero():
	case ok:
		it.at = t
		heap.Fix(&v.expiry, it.idx)
	default:
		it = &expiryItem{at: t, mac: mac}
		heap.Push(&v.expiry, it)
		v.expiryAt[mac] = it
	}
}

// ByMAC returns the token whose string has this MAC. It does not check expiry (see
// Entry.Expired).
func (v *View) ByMAC(mac string) (Entry, bool) {
	v.mu.RLock()
	e, ok := v.byMAC[mac]
	v.mu.RUnlock()
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// ByAccessor returns the token with this accessor.
func (v *View) ByAccessor(accessor string) (Entry, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	mac, ok := v.byAccessor[accessor]
	if !ok {
		return Entry{}, false
	}
	e, ok := v.byMAC[mac]
	if !ok {
		return Entry{}, false
	}
	return *e, true
}

// Children returns the MACs of the tokens whose parent is mac, sorted.
func (v *View) Children(mac string) []string {
	v.mu.RLock()
	kids := v.children[mac]
	out := make([]string, 0, len(kids))
	for k := range kids {
		out = append(out, k)
	}
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Accessors returns every accessor, sorted (LIST auth/token/accessors).
func (v *View) Accessors() []string {
	v.mu.RLock()
	out := make([]string, 0, len(v.byAccessor))
	for a := range v.byAccessor {
		out = append(out, a)
	}
	v.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Len is the number of live tokens.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.byMAC)
}

// Expiring returns up to limit tokens whose ExpireTime is at or before now, earliest first
// (ties by MAC). limit ≤ 0 means no limit. The cost is O(k log k) for k results, whatever the
// number of tokens: the heap is walked best-first and pruned at the first later expiry.
func (v *View) Expiring(now time.Time, limit int) []Entry {
	v.mu.RLock()
	defer v.mu.RUnlock()
	var out []Entry
	if len(v.expiry) == 0 || v.expiry[0].at.After(now) {
		return out
	}
	frontier := indexHeap{h: v.expiry, idx: []int{0}}
	for frontier.Len() > 0 && (limit <= 0 || len(out) < limit) {
		i := heap.Pop(&frontier).(int)
		it := v.expiry[i]
		if it.at.After(now) {
			break // the frontier is ordered: everything left is later still
		}
		out = append(out, *v.byMAC[it.mac])
		for _, c := range [2]int{2*i + 1, 2*i + 2} {
			if c < len(v.expiry) {
				heap.Push(&frontier, c)
			}
		}
	}
	return out
}

// NextExpiry is the earliest expiry of any token, for the expiration manager's timer.
func (v *View) NextExpiry() (time.Time, bool) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	if len(v.expiry) == 0 {
		return time.Time{}, false
	}
	return v.expiry[0].at, true
}

type snapshot struct {
	Version int     `json:"v"`
	Tokens  []Entry `json:"tokens"`          // sorted by MAC
	Roles   []Role  `json:"roles,omitempty"` // sorted by name; absent when there are none
}

// Snapshot implements projections.View: the entries sorted by MAC, so equal views encode
// equally. Indexes are derived and rebuilt by Restore.
func (v *View) Snapshot() ([]byte, error) {
	v.mu.RLock()
	s := snapshot{Version: 1, Tokens: make([]Entry, 0, len(v.byMAC))}
	for _, e := range v.byMAC {
		s.Tokens = append(s.Tokens, *e)
	}
	s.Roles = v.sortedRoles()
	v.mu.RUnlock()
	sort.Slice(s.Tokens, func(i, j int) bool { return s.Tokens[i].MAC < s.Tokens[j].MAC })
	return json.Marshal(s)
}

// Digest implements projections.View.
func (v *View) Digest() [32]byte { return projections.DigestOf(v) }

// Restore implements projections.View.
func (v *View) Restore(data []byte) error {
	var s snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("restore token view: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("restore token view: unknown snapshot version %d", s.Version)
	}
	seen := make(map[string]bool, 2*len(s.Tokens))
	for _, e := range s.Tokens {
		if e.MAC == "" || e.Accessor == "" || seen["m"+e.MAC] || seen["a"+e.Accessor] {
			return fmt.Errorf("restore token view: missing or duplicate mac or accessor: %w", errMalformed)
		}
		seen["m"+e.MAC], seen["a"+e.Accessor] = true, true
	}
	for _, r := range s.Roles {
		if r.Name == "" || seen["r"+r.Name] {
			return fmt.Errorf("restore token view: missing or duplicate role name: %w", errMalformed)
		}
		seen["r"+r.Name] = true
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reset()
	for i := range s.Tokens {
		v.index(&s.Tokens[i])
	}
	for _, r := range s.Roles {
		v.roles[r.Name] = r
	}
	return nil
}

type expiryItem struct {
	at  time.Time
	mac string
	idx int
}

// expiryHeap is a min-heap of expiries, ties broken by MAC so the order is total.
type expiryHeap []*expiryItem

func (h expiryHeap) Len() int { return len(h) }
func (h expiryHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].mac < h[j].mac
}
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *expiryHeap) Push(x any) {
	it := x.(*expiryItem)
	it.idx = len(*h)
	*h = append(*h, it)
}
func (h *expiryHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	it.idx = -1
	return it
}

// indexHeap orders positions of an expiryHeap by their items, for best-first walks.
type indexHeap struct {
	h   expiryHeap
	idx []int
}

func (f indexHeap) Len() int           { return len(f.idx) }
func (f indexHeap) Less(i, j int) bool { return f.h.Less(f.idx[i], f.idx[j]) }
func (f indexHeap) Swap(i, j int)      { f.idx[i], f.idx[j] = f.idx[j], f.idx[i] }
func (f *indexHeap) Push(x any)        { f.idx = append(f.idx, x.(int)) }
func (f *indexHeap) Pop() any {
	x := f.idx[len(f.idx)-1]
	f.idx = f.idx[:len(f.idx)-1]
	return x
}
