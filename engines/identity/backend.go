// Package identity is Vault's identity store at identity/: entities, entity aliases, groups
// (internal and external), group aliases and lookups, with Vault's paths, fields and answers.
// It also decides what a successful login changes in the store (LoginEvents): the entity and
// alias created at a first login, alias metadata refreshed, external group memberships synced
// with the identity provider's groups. Like every engine it decides events and never appends;
// projections/identity folds them.
package identity

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	identityview "github.com/ledger-secrets/ledger/projections/identity"
)

// MountInfo is what the store needs to know of an auth mount named by its accessor.
type MountInfo struct {
	Path, Type string
}

// Backend is the identity store.
type Backend struct {
	view   *identityview.View
	mounts func(accessor string) (MountInfo, bool)
}

var (
	_ engines.Backend = (*Backend)(nil)
	_ engines.Locker  = (*Backend)(nil)
)

// LockAll is the one lock key of the store: identity writes and the identity side of logins
// are serialised, so two first logins of one alias cannot create two entities.
const LockAll = "all"

// New returns the store over view; mounts resolves an auth mount's accessor.
func New(view *identityview.View, mounts func(accessor string) (MountInfo, bool)) *Backend {
	return &Backend{view: view, mounts: mounts}
}

// LockKey implements engines.Locker.
func (b *Backend) LockKey(*engines.Request) string { return LockAll }

type request struct {
	*engines.Request
	now  time.Time
	data map[string]any
}

var (
	errUnsupportedPath = engines.Errorf(engines.ErrNotFound, "unsupported path")
	errUnsupportedOp   = engines.Errorf(engines.ErrUnsupported, "unsupported operation")
)

func isWrite(op engines.Operation) bool { return op == engines.OpCreate || op == engines.OpUpdate }

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(_ context.Context, req *engines.Request) (*engines.Response, error) {
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	r := &request{Request: req, now: now.UTC(), data: req.Data}
	if r.data == nil {
		r.data = map[string]any{}
	}
	p := strings.TrimSuffix(req.Path, "/")
	first, rest, _ := strings.Cut(p, "/")
	switch first {
	case "entity":
		return b.entityPaths(r, rest)
	case "entity-alias":
		return b.aliasPaths(r, rest)
	case "group":
		return b.groupPaths(r, rest)
	case "group-alias":
		return b.groupAliasPaths(r, rest)
	case "lookup":
		if !isWrite(req.Op) {
			return nil, errUnsupportedOp
		}
		switch rest {
		case "entity":
			return b.lookupEntity(r)
		case "group":
			return b.lookupGroup(r)
		}
	}
	return nil, errUnsupportedPath
}

func newUUID() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func (b *Backend) event(r *request, typ, kind, id string, payload any) ledger.Event {
	return newEvent(r.ID, r.Caller, r.now, typ, kind, id, payload)
}

func newEvent(reqID string, caller *engines.Caller, now time.Time, typ, kind, id string, payload any) ledger.Event {
	p, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("identity: %s payload does not encode: %v", typ, err))
	}
	ev := ledger.Event{Type: typ, Subject: ledger.SubjectFor("identity", kind, id), Payload: p, Request: reqID, Time: now}
	if caller != nil {
		ev.Actor = caller.Accessor
	}
	return ev
}

// list answers a LIST: 404 when empty, as Vault.
func list(keys []string, info map[string]any) (*engines.Response, error) {
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	d := map[string]any{"keys": keys}
	if info != nil {
		d["key_info"] = info
	}
	return &engines.Response{Data: d}, nil
}

func strs(in []string) []string { return append([]string{}, in...) }

func meta(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func sortedUnique(in []string) []string {
	set := map[string]bool{}
	out := []string{}
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" && !set[s] {
			set[s] = true
			out = append(out, s)
		}
	}
	sortStrings(out)
	return out
}
