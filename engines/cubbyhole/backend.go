// Package cubbyhole is the cubbyhole secrets engine: every token has its own private
// path → value store at cubbyhole/, which no other token (not even root) can read, and which is
// destroyed with the token. Each value is sealed with AES-256-GCM under its own data key from
// ledger.DataKeys (bound to the token's MAC and the path), so destroying a cubbyhole shreds its
// keys and the ciphertext left in the log opens for no one. Response wrapping stores the wrapped
// response in the wrapping token's cubbyhole through Put and Open.
package cubbyhole

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	cubbyview "github.com/ledger-secrets/ledger/projections/cubbyhole"
)

// KeyPrefix is the data key prefix of every cubbyhole value.
const KeyPrefix = "cubbyhole"

// Backend serves cubbyhole/ for whichever token makes the request.
type Backend struct {
	view    *cubbyview.View
	keys    *ledger.DataKeys
	keyring *ledger.Keyring
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
)

// New returns the cubbyhole backend. keyring seals new data keys (the current unseal's).
func New(view *cubbyview.View, keys *ledger.DataKeys, keyring *ledger.Keyring) *Backend {
	return &Backend{view: view, keys: keys, keyring: keyring}
}

// ErrValueGone: a value the view lists could not be opened because its data key is gone.
var ErrValueGone = errors.New("cubbyhole: data key of a live value is missing")

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if req.Caller == nil || req.Caller.TokenMAC == "" {
		return nil, engines.Errorf(engines.ErrPermissionDenied, "permission denied")
	}
	mac, path := req.Caller.TokenMAC, req.Path
	if strings.ContainsRune(path, 0) {
		return nil, engines.BadRequest("invalid path: contains a NUL byte")
	}
	switch req.Op {
	case engines.OpList:
		if path != "" && !strings.HasSuffix(path, "/") {
			path += "/"
		}
		return &engines.Response{Data: map[string]any{"keys": b.view.List(mac, path)}}, nil
	case engines.OpRead:
		if path == "" {
			return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
		}
		data, ok, err := b.read(ctx, mac, path)
		if err != nil || !ok {
			return nil, err // Vault: a missing value is a 404 with no message
		}
		return &engines.Response{Data: data}, nil
	case engines.OpCreate, engines.OpUpdate:
		if path == "" || strings.HasSuffix(path, "/") {
			return nil, engines.BadRequest("invalid path %q: a cubbyhole entry cannot end with \"/\"", path)
		}
		if len(req.Data) == 0 {
			return nil, engines.BadRequest("missing data fields")
		}
		plain, err := json.Marshal(req.Data)
		if err != nil {
			return nil, engines.BadRequest("data does not encode as JSON")
		}
		ev, err := b.Put(ctx, mac, path, plain, req.Now)
		clear(plain)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	case engines.OpDelete:
		old, ok := b.view.Get(mac, path)
		if !ok {
			return nil, nil
		}
		return &engines.Response{Events: []ledger.Event{event(Deleted, mac, cubbyview.DeletedPayload{Token: mac, Path: path, Shred: []string{old.KeyID}})}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

// Event types, re-exported for the pipeline.
const (
	Written   = cubbyview.Written
	Deleted   = cubbyview.Deleted
	Destroyed = cubbyview.Destroyed
)

func (b *Backend) read(ctx context.Context, mac, path string) (map[string]any, bool, error) {
	pt, ok, err := b.Open(ctx, mac, path)
	if err != nil || !ok {
		return nil, ok, err
	}
	defer clear(pt)
	dec := json.NewDecoder(bytes.NewReader(pt))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false, fmt.Errorf("decode cubbyhole value: %w", ledger.ErrCorrupt)
	}
	return m, true, nil
}

// Exists implements engines.ExistenceChecker.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	if req.Caller == nil {
		return false, nil
	}
	_, ok := b.view.Get(req.Caller.TokenMAC, req.Path)
	return ok, nil
}

// LockKey implements engines.Locker: writes to one token's path are serialised.
func (b *Backend) LockKey(req *engines.Request) string {
	if req.Caller == nil {
		return ""
	}
	return req.Caller.TokenMAC + "\x00" + req.Path
}

func event(typ, mac string, p any) ledger.Event {
	b, _ := json.Marshal(p)
	return ledger.Event{Type: typ, Subject: ledger.SubjectFor("cubbyhole", mac), Payload: b}
}

func ad(mac, path string) []byte { return []byte("ledger cubbyhole v1\x00" + mac + "\x00" + path) }

const sealedFormat = 1

// Put seals plaintext under a new data key and returns the event that stores it at path in the
// cubbyhole of the token whose MAC is mac. The key is durable before Put returns; if the event
// never lands the key is an orphan that Reconcile shreds.
func (b *Backend) Put(ctx context.Context, mac, path string, plaintext []byte, now time.Time) (ledger.Event, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return ledger.Event{}, fmt.Errorf("key id: %w", err)
	}
	keyID := KeyPrefix + "." + mac + "." + hex.EncodeToString(rnd[:])
	key, err := b.keys.New(ctx, b.keyring, keyID)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("new data key: %w", err)
	}
	defer clear(key)
	gcm, err := newGCM(key)
	if err != nil {
		return ledger.Event{}, err
	}
	out := make([]byte, 1+gcm.NonceSize(), 1+gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	out[0] = sealedFormat
	if _, err := rand.Read(out[1:]); err != nil {
		return ledger.Event{}, fmt.Errorf("nonce: %w", err)
	}
	sealed := gcm.Seal(out, out[1:], plaintext, ad(mac, path))
	p := cubbyview.WrittenPayload{Token: mac, Path: path, Time: now, KeyID: keyID, Sealed: sealed}
	if old, ok := b.view.Get(mac, path); ok {
		p.Shred = []string{old.KeyID}
	}
	return event(Written, mac, p), nil
}

// Open returns the plaintext at path in a token's cubbyhole; ok is false when there is none.
// The caller clears the plaintext when done.
func (b *Backend) Open(ctx context.Context, mac, path string) ([]byte, bool, error) {
	v, ok := b.view.Get(mac, path)
	if !ok {
		return nil, false, nil
	}
	key, ok := b.keys.Get(v.KeyID)
	if !ok {
		var err error
		if key, err = b.keys.Fetch(ctx, b.keyring, v.KeyID); err != nil {
			if errors.Is(err, ledger.ErrNoDataKey) {
				return nil, false, ErrValueGone
			}
			return nil, false, fmt.Errorf("data key: %w", err)
		}
	}
	defer clear(key)
	gcm, err := newGCM(key)
	if err != nil {
		return nil, false, err
	}
	if len(v.Sealed) < 1+gcm.NonceSize() || v.Sealed[0] != sealedFormat {
		return nil, false, fmt.Errorf("sealed value: unknown format: %w", ledger.ErrCorrupt)
	}
	pt, err := gcm.Open(nil, v.Sealed[1:1+gcm.NonceSize()], v.Sealed[1+gcm.NonceSize():], ad(mac, path))
	if err != nil {
		return nil, false, fmt.Errorf("sealed value does not authenticate: %w", ledger.ErrCorrupt)
	}
	return pt, true, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return gcm, nil
}

// DestroyEvent returns the event that drops a token's whole cubbyhole, listing its keys to
// shred; ok is false when the cubbyhole is empty.
func (b *Backend) DestroyEvent(mac string) (ledger.Event, bool) {
	ids := b.view.KeyIDs(mac)
	if len(ids) == 0 {
		return ledger.Event{}, false
	}
	return event(Destroyed, mac, cubbyview.DestroyedPayload{Token: mac, Shred: ids}), true
}

// Shred destroys the data keys that committed and applied cubbyhole events made unreachable.
// A key the view still references is left alone (a later write won the race); what is left
// over is Reconcile's.
func (b *Backend) Shred(ctx context.Context, events []ledger.Event) error {
	var errs []error
	for _, ev := range events {
		switch ev.Type {
		case Written, Deleted, Destroyed, cubbyview.Unwrapped:
		default:
			continue
		}
		var p struct {
			Token string   `json:"token"`
			Path  string   `json:"path"`
			Shred []string `json:"shred"`
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil {
			errs = append(errs, fmt.Errorf("shred: decode %s: %w", ev.Type, err))
			continue
		}
		live := map[string]bool{}
		for _, id := range b.view.KeyIDs(p.Token) {
			live[id] = true
		}
		for _, id := range p.Shred {
			if live[id] {
				continue
			}
			if err := b.keys.Shred(ctx, id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Reconcile shreds every cubbyhole data key that the view no longer references and that was
// stored before `before` (a crash between an event and its shred, a write whose event never
// landed). Run it with a view caught up with the log.
func (b *Backend) Reconcile(ctx context.Context, before time.Time) (int, error) {
	list, err := b.keys.List(ctx, KeyPrefix)
	if err != nil {
		return 0, err
	}
	live := map[string]bool{}
	for _, id := range b.view.KeyIDs("") {
		live[id] = true
	}
	n := 0
	for _, k := range list {
		if live[k.ID] || !k.Stored.Before(before) {
			continue
		}
		if err := b.keys.Shred(ctx, k.ID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
