package proxy

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

func TestCacheStoreLookup(t *testing.T) {
	c := NewCache()
	body := []byte(`{"lease_id":"database/creds/ro/abc","lease_duration":3600,"renewable":true,"data":{"username":"u"}}`)
	key := requestKey("GET", "database/creds/ro", "", nil, "tok")
	c.store(key, "tok", http.StatusOK, http.Header{"Content-Type": {"application/json"}}, body)
	// Another token, same request: a different key, never the first token's lease.
	if _, _, ok := c.lookup(requestKey("GET", "database/creds/ro", "", nil, "other")); ok {
		t.Fatal("a lease was handed to another token")
	}
	_, got, ok := c.lookup(key)
	if !ok {
		t.Fatal("miss")
	}
	var m map[string]any
	json.Unmarshal(got, &m)
	if d := m["lease_duration"].(float64); d > 3600 || d < 3590 {
		t.Errorf("lease_duration %v, want what is left of 3600", d)
	}
	// Near the end of its first duration the entry is a miss.
	c.mu.Lock()
	c.entries[key].expires = time.Now().Add(10 * time.Minute)
	c.mu.Unlock()
	if _, _, ok := c.lookup(key); ok {
		t.Error("an entry with less than a third of its lease left was served")
	}
	// Not stored: errors, no lease, KV reads.
	for _, b := range []string{`{"data":{"k":"v"}}`, `{"lease_id":"x","lease_duration":0}`, `not json`} {
		k := requestKey("GET", b, "", nil, "tok")
		c.store(k, "tok", http.StatusOK, nil, []byte(b))
		if _, _, ok := c.lookup(k); ok {
			t.Errorf("cached %s", b)
		}
	}
	c.store(key, "tok", http.StatusOK, nil, body)
	if c.EvictPrefix("database/creds/") != 1 || c.Len() != 0 {
		t.Error("evict prefix")
	}
	c.store(key, "tok", http.StatusOK, nil, body)
	if c.EvictToken("tok") != 1 || c.EvictLease("database/creds/ro/abc") {
		t.Error("evict token")
	}
}

func TestCacheable(t *testing.T) {
	for path, want := range map[string]bool{
		"database/creds/ro": true, "sys/leases/renew": false, "auth/token/create": true,
		"auth/token/lookup-self": false, "auth/approle/login": true,
	} {
		if got := cacheable(http.MethodGet, path); got != want {
			t.Errorf("cacheable(%s) = %v", path, got)
		}
	}
	if cacheable(http.MethodDelete, "secret/data/x") {
		t.Error("DELETE cacheable")
	}
}
