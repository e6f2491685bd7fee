// Package kv is the KV secrets engine, version 2 (versioned: config, data, delete, undelete,
// destroy, metadata, subkeys) and version 1 (a plain path → map store), with Vault's paths,
// fields and responses.
//
// Values are crypto-shredded: each version (each KV v1 value) is sealed with AES-256-GCM under
// its own random data key from ledger.DataKeys, with the mount UUID, path and version as
// associated data. Events carry only that ciphertext and the key id, so the log never holds a
// value the keyring alone can open. Destroying a version, trimming it by max_versions, deleting
// a path's metadata or overwriting a KV v1 value makes the key unreachable; the engine lists
// such keys in the event ("shred") and destroys them in its Shred hook, which the pipeline calls
// after the event is committed and applied.
package kv

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	segjson "github.com/segmentio/encoding/json"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// DefaultMaxVersions is the number of versions kept when neither the path nor the mount says.
const DefaultMaxVersions = 10

// Backend is one KV mount.
type Backend struct {
	view    *kvview.View
	keys    *ledger.DataKeys
	keyring *ledger.Keyring
	mount   engines.Mount
	v2      bool
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
)

// New builds the backend for mount m: KV v2 when m.Options["version"] is "2", else KV v1.
// keyring seals new data keys and opens keys stored by other nodes; backends are rebuilt at
// every unseal, so it is the keyring of the current unseal.
func New(view *kvview.View, keys *ledger.DataKeys, keyring *ledger.Keyring, m engines.Mount) *Backend {
	return &Backend{view: view, keys: keys, keyring: keyring, mount: m, v2: m.Options["version"] == "2"}
}

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if b.v2 {
		return b.handleV2(ctx, req)
	}
	return b.handleV1(ctx, req)
}

// route splits a KV v2 request path into its endpoint and the secret path.
func route(p string) (endpoint, path string) {
	if p == "config" {
		return "config", ""
	}
	for _, e := range []string{"data", "metadata", "delete", "undelete", "destroy", "subkeys", "rollback", "import"} {
		if p == e {
			return e + "$", "" // the endpoint's root, without a path
		}
		if rest, ok := strings.CutPrefix(p, e+"/"); ok {
			return e, rest
		}
	}
	return "", p
}

func (b *Backend) handleV2(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	endpoint, path := route(req.Path)
	if endpoint == "metadata$" && req.Op == engines.OpList {
		endpoint = "metadata"
	}
	switch endpoint {
	case "config":
		return b.handleConfig(req)
	case "data":
		return b.handleData(ctx, req, path)
	case "metadata":
		return b.handleMetadata(req, path)
	case "delete", "undelete", "destroy":
		return b.handleVersions(req, endpoint, path)
	case "subkeys":
		return b.handleSubkeys(ctx, req, path)
	case "rollback":
		return b.handleRollback(ctx, req, path)
	case "import":
		return b.handleImport(ctx, req, path)
	case "data$", "metadata$", "delete$", "undelete$", "destroy$":
		return &engines.Response{Status: 404, Warnings: []string{"Non-listing operations on the root of a K/V v2 mount are not supported."}}, nil
	}
	verb := map[engines.Operation]string{
		engines.OpCreate: "put", engines.OpUpdate: "put", engines.OpPatch: "patch",
		engines.OpRead: "get", engines.OpList: "list", engines.OpDelete: "delete",
	}[req.Op]
	return &engines.Response{Status: 404, Warnings: []string{fmt.Sprintf(
		"Invalid path for a versioned K/V secrets engine. See the API docs for the appropriate API endpoints to use. If using the Vault CLI, use 'vault kv %s' for this operation.", verb)}}, nil
}

func unsupported() error { return engines.Errorf(engines.ErrUnsupported, "unsupported operation") }

func isWrite(op engines.Operation) bool { return op == engines.OpCreate || op == engines.OpUpdate }

// checkPath refuses paths a secret cannot have.
func checkPath(path string) error {
	switch {
	case path == "":
		return engines.BadRequest("missing path")
	case strings.HasSuffix(path, "/"):
		return engines.BadRequest("invalid path %q: a secret path cannot end with \"/\"", path)
	case strings.ContainsRune(path, 0):
		return engines.BadRequest("invalid path: contains a NUL byte")
	}
	return nil
}

// Exists implements engines.ExistenceChecker: a write to an existing secret is an update, to a
// new one a create. Endpoints that Vault only knows as updates (config, delete, undelete,
// destroy) always exist.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	if !b.v2 {
		_, ok := b.view.Value(b.mount.UUID, req.Path)
		return ok, nil
	}
	endpoint, path := route(req.Path)
	switch endpoint {
	case "data", "metadata":
		return b.view.Has(b.mount.UUID, path), nil
	}
	return true, nil
}

// LockKey implements engines.Locker: the secret path, so check-and-set, trimming and destroy
// decisions about one path are serialised; the mount configuration has a key of its own.
func (b *Backend) LockKey(req *engines.Request) string {
	if !b.v2 {
		return req.Path
	}
	endpoint, path := route(req.Path)
	if endpoint == "config" {
		return "\x00config"
	}
	return path
}

// subject is the aggregate of a path's events.
func (b *Backend) subject(path string) string { return ledger.SubjectFor("kv", b.mount.UUID, path) }

func (b *Backend) event(req *engines.Request, typ, subject string, payload any) (ledger.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev := ledger.Event{Type: typ, Subject: subject, Time: req.Now, Request: req.ID, Payload: p}
	if req.Caller != nil {
		ev.Actor = req.Caller.Accessor
	}
	return ev, nil
}

func respond(data map[string]any, events ...ledger.Event) *engines.Response {
	return &engines.Response{Data: data, Events: events}
}

// --- values and their data keys ---

// MountKeyPrefix is the data-key id prefix of a mount's keys: "kv." + a token derived from the
// mount UUID. Every key of the mount is "<prefix>.<random>".
func MountKeyPrefix(mountUUID string) string {
	h := sha256.Sum256([]byte("ledger kv mount\x00" + mountUUID))
	return "kv." + hex.EncodeToString(h[:8])
}

func (b *Backend) newKeyID() string {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		panic("kv: crypto/rand unavailable")
	}
	return MountKeyPrefix(b.mount.UUID) + "." + hex.EncodeToString(r[:])
}

// valueAD binds a sealed value to where it belongs: it does not open under another mount, path
// or version.
func valueAD(mountUUID, path string, version uint64) []byte {
	ad := []byte("ledger kv value v1\x00")
	for _, s := range []string{mountUUID, path} {
		ad = binary.AppendUvarint(ad, uint64(len(s)))
		ad = append(ad, s...)
	}
	return binary.AppendUvarint(ad, version)
}

// sealedFormat: a sealed value is this byte, a 12-byte AES-GCM nonce, the ciphertext.
const (
	sealedFormat = 1
	gcmNonceSize = 12
)

// seal creates a data key and seals plaintext under it. The key is durable before seal returns
// (the side effect comes before the event that records it; if the event never lands, the key
// is an orphan that Reconcile shreds).
func (b *Backend) seal(ctx context.Context, plaintext, ad []byte) (keyID string, sealed []byte, err error) {
	keyID = b.newKeyID()
	key, err := b.keys.New(ctx, b.keyring, keyID)
	if err != nil {
		return "", nil, fmt.Errorf("new data key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return "", nil, fmt.Errorf("data key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return "", nil, fmt.Errorf("data key: %w", err)
	}
	out := make([]byte, 1+gcm.NonceSize(), 1+gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	out[0] = sealedFormat
	nonce := out[1:]
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("nonce: %w", err)
	}
	// format byte || nonce || ciphertext+tag; the key is used for this one value only.
	return keyID, gcm.Seal(out, nonce, plaintext, ad), nil
}

// ErrValueGone: a version the view still lists could not be opened because its data key is
// gone (shredded while this node's view lagged, or lost). It is an internal error.
var ErrValueGone = errors.New("kv: data key of a live version is missing")

// open decrypts a sealed value. The caller clears the plaintext when done.
func (b *Backend) open(ctx context.Context, keyID string, sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 1+gcmNonceSize || sealed[0] != sealedFormat {
		return nil, fmt.Errorf("sealed value: unknown format: %w", ledger.ErrCorrupt)
	}
	nonce, ct := sealed[1:1+gcmNonceSize], sealed[1+gcmNonceSize:]
	// A key in memory opens the value without leaving the store (its cipher kept for hot keys).
	pt, found, err := b.keys.OpenGCM(nil, keyID, nonce, ct, ad)
	if found {
		if err != nil {
			return nil, fmt.Errorf("sealed value does not authenticate: %w", ledger.ErrCorrupt)
		}
		return pt, nil
	}
	key, err := b.keys.Fetch(ctx, b.keyring, keyID)
	if err != nil {
		if errors.Is(err, ledger.ErrNoDataKey) {
			return nil, ErrValueGone
		}
		return nil, fmt.Errorf("data key: %w", err)
	}
	defer clear(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	pt, err = gcm.Open(nil, nonce, ct, ad)
	if err != nil {
		return nil, fmt.Errorf("sealed value does not authenticate: %w", ledger.ErrCorrupt)
	}
	return pt, nil
}

// openJSON opens a sealed JSON object, keeping numbers exact.
func (b *Backend) openJSON(ctx context.Context, keyID string, sealed, ad []byte) (map[string]any, error) {
	pt, err := b.open(ctx, keyID, sealed, ad)
	if err != nil {
		return nil, err
	}
	defer clear(pt)
	return decodeValue(pt)
}

// decodeValue decodes a stored value. It is parsed in place (not via a string, so the caller
// can clear pt, and with no decoder buffer holding a copy): segmentio/encoding copies every
// string and number out of pt and decodes what encoding/json's Decoder with UseNumber does
// (TestDecodeValueMatchesEncodingJSON) at a third of the CPU — a read decodes its value on
// every request (BENCHMARKS.md, issue 10).
//
// The map is made here, sized by the value's colons (at least its number of keys): given none,
// the decoder makes room for 64 keys, 4.5 KB cleared and collected on every read of a
// two-key secret. A nested object still gets the decoder's 64.
func decodeValue(pt []byte) (map[string]any, error) {
	m := make(map[string]any, min(bytes.Count(pt, []byte{':'}), 64))
	if rest, err := segjson.Parse(pt, &m, segjson.UseNumber); err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("decode value: %w", ledger.ErrCorrupt) // never echo the bytes
	}
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

// --- the shred hook ---

// Shred is the hook the pipeline calls after the events of one of this backend's responses
// were appended *and applied to the view* (after WaitFor, before or after answering): it
// destroys the data keys the events made unreachable — destroyed versions, versions trimmed by
// max_versions, every version of a deleted path, a replaced or deleted KV v1 value. Events of
// other types are skipped. Shredding is idempotent; on an error the caller may retry, and
// Reconcile catches what a crash left behind.
func (b *Backend) Shred(ctx context.Context, events []ledger.Event) error {
	return ShredEvents(ctx, b.view, b.keys, events)
}

// ShredEvents destroys the data keys listed in KV events (see Backend.Shred). As a guard, a key
// the view still references at the event's path is left alone: if the view has not applied the
// event yet, or another node's write to the same path won the race, nothing live is destroyed
// (a key left over this way is Reconcile's).
func ShredEvents(ctx context.Context, view *kvview.View, keys *ledger.DataKeys, events []ledger.Event) error {
	var errs []error
	for _, ev := range events {
		switch ev.Type {
		case kvview.VersionWritten, kvview.VersionsDestroyed, kvview.MetadataDeleted, kvview.V1Written, kvview.V1Deleted:
		default:
			continue
		}
		var p struct {
			Mount string   `json:"mount"`
			Path  string   `json:"path"`
			Shred []string `json:"shred"`
		}
		// segmentio/encoding skips the payload's sealed value at a third of encoding/json's
		// CPU: every write is decoded here once more after it was applied.
		if err := segjson.Unmarshal(ev.Payload, &p); err != nil {
			errs = append(errs, fmt.Errorf("shred: decode %s: %w", ev.Type, err))
			continue
		}
		if len(p.Shred) == 0 {
			continue
		}
		ids := view.DropLive(p.Mount, p.Path, p.Shred)
		var err error
		switch ev.Type {
		case kvview.VersionWritten, kvview.V1Written:
			// A version trimmed by max_versions, a v1 value replaced: nobody waits on their
			// destruction, so it is batched (erased from disk within ledger.ShredDeadline).
			err = keys.ShredLater(ids)
		default:
			// An explicit destroy or delete: erased before the request is answered.
			err = keys.ShredMany(ctx, ids)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ShredMount destroys every data key of a mount. Call it once the mount's mount.Disabled event
// is committed: the view has then dropped the mount, and its values become unrecoverable.
func ShredMount(ctx context.Context, keys *ledger.DataKeys, mountUUID string) (int, error) {
	list, err := keys.List(ctx, MountKeyPrefix(mountUUID))
	if err != nil {
		return 0, err
	}
	return shredList(ctx, keys, list)
}

// shredList destroys the listed keys, a few thousand per flush.
func shredList(ctx context.Context, keys *ledger.DataKeys, list []ledger.DataKeyInfo) (int, error) {
	n := 0
	for chunk := range slices.Chunk(list, 4096) {
		ids := make([]string, len(chunk))
		for i, k := range chunk {
			ids[i] = k.ID
		}
		if err := keys.ShredMany(ctx, ids); err != nil {
			return n, err
		}
		n += len(chunk)
	}
	return n, nil
}

// Reconcile shreds every KV data key that no version in view references and that was stored
// before `before`. It finds what a crash left behind: a key whose shred hook never ran (the
// event is in the log, the key is not needed), a key created for a request whose event never
// landed, the keys of a disabled mount. Run it on the active node with a view that has caught
// up with the log, and a `before` well in the past (minutes): a key stored for a write still in
// flight is not yet referenced, and must not be taken.
func Reconcile(ctx context.Context, view *kvview.View, keys *ledger.DataKeys, before time.Time) (int, error) {
	list, err := keys.List(ctx, "kv")
	if err != nil {
		return 0, err
	}
	live := map[string]bool{}
	for _, id := range view.KeyIDs("") {
		live[id] = true
	}
	list = slices.DeleteFunc(list, func(k ledger.DataKeyInfo) bool { return live[k.ID] || !k.Stored.Before(before) })
	return shredList(ctx, keys, list)
}

// --- formatting ---

// ts formats a time as Vault does (RFC 3339 with nanoseconds, UTC); "" for the zero time.
func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// customMetadata is the custom_metadata value of a response: null when there is none, as Vault.
func customMetadata(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
