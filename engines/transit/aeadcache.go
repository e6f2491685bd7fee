package transit

import (
	"sync"
	"time"
	"unsafe"

	"github.com/tink-crypto/tink-go/v2/tink"

	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// aeadCache keeps the Tink AEAD of the symmetric key versions requests use, so that a request
// does not expand the key again (building an AES-GCM primitive — its key schedule and GHASH
// table — was most of a short encryption's CPU).
//
// An entry holds the version's key bytes as the view stores them. The view never modifies a
// version's bytes, it replaces them (a restore or import makes new ones), and the entry keeps
// those bytes alive, so "the view still holds the very bytes this entry was built from" (the
// same backing array, compared by address) is a sound test that the entry is for the key the
// request asked for. Derived and convergent keys are not cached: theirs depend on the request.
//
// Expanded keys of versions the view no longer holds (deleted, trimmed, replaced) are dropped
// by a sweep on every miss and at most sweepEvery apart while the mount serves requests, and
// all at once when the backend closes (seal). Until then an expanded key stays in memory as the
// version's raw bytes do until the collector reuses them.
type aeadCache struct {
	mu    sync.RWMutex
	m     map[aeadID]aeadEntry
	swept time.Time
}

type aeadID struct {
	name    string
	version int
}

type aeadEntry struct {
	typ  string
	key  []byte // the view's bytes, kept for the identity test
	aead tink.AEAD
}

const (
	// maxCachedAEADs bounds the cache: past it, it starts again empty.
	maxCachedAEADs = 1024
	sweepEvery     = time.Minute
)

// sameBytes reports whether a and b are the same bytes in memory (not merely equal ones).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && len(a) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b)
}

// get returns the AEAD of version ver of key k (whose raw key is key, the view's bytes).
func (c *aeadCache) get(view *transitview.View, mount string, k transitview.Key, ver int, key []byte) (tink.AEAD, error) {
	id := aeadID{k.Name, ver}
	c.mu.RLock()
	e, ok := c.m[id]
	due := time.Since(c.swept) > sweepEvery
	c.mu.RUnlock()
	if ok && e.typ == k.Type && sameBytes(e.key, key) {
		if due {
			c.mu.Lock()
			c.sweepLocked(view, mount)
			c.mu.Unlock()
		}
		return e.aead, nil
	}
	a, err := tinkAEAD(k.Type, key)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(view, mount)
	if c.m == nil || len(c.m) >= maxCachedAEADs {
		c.m = make(map[aeadID]aeadEntry)
	}
	c.m[id] = aeadEntry{typ: k.Type, key: key, aead: a}
	return a, nil
}

// sweepLocked drops the entries whose version the view no longer holds with the same bytes.
func (c *aeadCache) sweepLocked(view *transitview.View, mount string) {
	c.swept = time.Now()
	for id, e := range c.m {
		k, ok := view.Get(mount, id.name)
		if v, has := k.Versions[id.version]; !ok || !has || k.Type != e.typ || !sameBytes(v.Key, e.key) {
			delete(c.m, id)
		}
	}
}

// clear drops every entry.
func (c *aeadCache) clear() {
	c.mu.Lock()
	c.m = nil
	c.mu.Unlock()
}
