// Package transit is Vault's transit secrets engine: named keys (AES-GCM, ChaCha20-Poly1305,
// Ed25519, ECDSA, RSA, HMAC) with versions, and encryption, decryption, rewrapping, data keys,
// signatures, HMACs, random bytes and hashes with them, at Vault's paths and in Vault's
// request and response shapes ("vault:v<N>:<base64>").
//
// Key material is generated here, when a request decides to create or rotate a key, and
// travels only inside the events (which the log seals under the keyring) to the view
// (projections/transit), which keeps it in memory. Cryptography goes through Tink's primitives
// without output prefix wherever Tink has the primitive (AES-GCM, ChaCha20-Poly1305, HMAC,
// Ed25519, ECDSA, HKDF); the exceptions say why where they are.
package transit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	transitview "github.com/ledger-secrets/ledger/projections/transit"
)

// Backend is one transit mount.
type Backend struct {
	view  *transitview.View
	mount engines.Mount
	aeads aeadCache
}

var (
	_ engines.Backend          = (*Backend)(nil)
	_ engines.ExistenceChecker = (*Backend)(nil)
	_ engines.Locker           = (*Backend)(nil)
)

// New builds the backend for mount m over the transit view.
func New(view *transitview.View, m engines.Mount) *Backend {
	return &Backend{view: view, mount: m}
}

// Close drops the expanded keys the backend keeps (the node seals).
func (b *Backend) Close() { b.aeads.clear() }

// route is a request path taken apart: the endpoint ("keys", "keys/config", "encrypt", …), the
// key name, and the extra URL segments some endpoints take (export type and version, datakey
// type, hash algorithm, random source and bytes).
type route struct {
	endpoint string
	name     string
	args     []string
}

// nameRE is Vault's framework.GenericNameRegex: word characters, with '-', '.' and '@' inside.
var nameRE = regexp.MustCompile(`^\w(?:[\w\-.@]*\w)?$`)

func errInvalidName() error { return engines.BadRequest("invalid key name") }

// parse splits a path relative to the mount. Unknown paths are ErrNotFound, like Vault's
// "unsupported path"; a known endpoint with a malformed key name is a 400.
func parse(p string) (route, error) {
	head, rest, _ := strings.Cut(p, "/")
	segs := []string{}
	if rest != "" {
		segs = strings.Split(rest, "/")
	}
	r := route{endpoint: head}
	switch head {
	case "keys":
		if rest == "" {
			r.endpoint = "keys$"
			return r, nil
		}
		r.name = rest
		if i := strings.LastIndexByte(rest, '/'); i >= 0 {
			switch sub := rest[i+1:]; sub {
			case "config", "rotate", "trim":
				r.endpoint, r.name = "keys/"+sub, rest[:i]
			}
		}
	case "encrypt", "decrypt", "rewrap", "backup":
		r.name = rest
	case "restore":
		r.name = rest
		if rest == "" {
			return r, nil // the name comes from the backup
		}
	case "sign", "verify", "hmac":
		if len(segs) > 2 {
			return r, errInvalidName()
		}
		if len(segs) == 2 {
			r.name, r.args = segs[0], segs[1:]
		} else {
			r.name = rest
		}
	case "datakey":
		if len(segs) != 2 {
			if len(segs) < 2 {
				return r, engines.Errorf(engines.ErrNotFound, "unsupported path")
			}
			return r, errInvalidName()
		}
		r.args, r.name = segs[:1], segs[1]
	case "export":
		if len(segs) < 2 {
			return r, engines.Errorf(engines.ErrNotFound, "unsupported path")
		}
		if len(segs) > 3 {
			return r, errInvalidName()
		}
		r.args, r.name = append([]string{segs[0]}, segs[2:]...), segs[1]
	case "random", "hash":
		if len(segs) > 2 || (head == "hash" && len(segs) > 1) {
			return r, engines.Errorf(engines.ErrNotFound, "unsupported path")
		}
		r.args = segs
		return r, nil
	default:
		return r, engines.Errorf(engines.ErrNotFound, "unsupported path")
	}
	if !nameRE.MatchString(r.name) {
		return r, errInvalidName()
	}
	return r, nil
}

// HandleRequest implements engines.Backend.
func (b *Backend) HandleRequest(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	r, err := parse(req.Path)
	if err != nil {
		return nil, err
	}
	write := req.Op == engines.OpCreate || req.Op == engines.OpUpdate
	switch {
	case r.endpoint == "keys$" && req.Op == engines.OpList:
		return b.listKeys(), nil
	case r.endpoint == "keys":
		switch {
		case req.Op == engines.OpRead:
			return b.readKey(req, r.name)
		case write:
			return b.createKey(req, r.name)
		case req.Op == engines.OpDelete:
			return b.deleteKey(req, r.name)
		}
	case r.endpoint == "keys/config" && write:
		return b.configKey(req, r.name)
	case r.endpoint == "keys/rotate" && write:
		return b.rotateKey(req, r.name)
	case r.endpoint == "keys/trim" && write:
		return b.trimKey(req, r.name)
	case r.endpoint == "export" && req.Op == engines.OpRead:
		return b.export(r)
	case r.endpoint == "backup" && req.Op == engines.OpRead:
		return b.backup(req, r.name)
	case r.endpoint == "restore" && write:
		return b.restore(req, r.name)
	case r.endpoint == "encrypt" && write:
		return b.encrypt(req, r.name)
	case r.endpoint == "decrypt" && write:
		return b.decrypt(req, r.name)
	case r.endpoint == "rewrap" && write:
		return b.rewrap(req, r.name)
	case r.endpoint == "datakey" && write:
		return b.datakey(req, r)
	case r.endpoint == "sign" && write:
		return b.sign(req, r)
	case r.endpoint == "verify" && write:
		return b.verify(req, r)
	case r.endpoint == "hmac" && write:
		return b.hmac(req, r)
	case r.endpoint == "random" && write:
		return b.random(req, r)
	case r.endpoint == "hash" && write:
		return b.hash(req, r)
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

// Exists implements engines.ExistenceChecker. As in Vault, only encrypt/:name has an existence
// check: a write to it for a key that does not exist is a create (and upserts the key, which
// needs the "create" capability); every other write is an update. keys/:name in particular is
// always an update in Vault, so policies granting "update" on transit/keys/* can create keys.
func (b *Backend) Exists(_ context.Context, req *engines.Request) (bool, error) {
	r, err := parse(req.Path)
	if err != nil || r.endpoint != "encrypt" {
		return true, nil
	}
	_, ok := b.view.Get(b.mount.UUID, r.name)
	return ok, nil
}

// LockKey implements engines.Locker: the key name, for the writes that decide events about a
// key (create, config, rotate, trim, delete, restore, and an encrypt that may upsert). Writes
// that only compute (decrypt, sign, hmac, …) and encrypts of an existing key take no lock, so
// they run in parallel.
func (b *Backend) LockKey(req *engines.Request) string {
	r, err := parse(req.Path)
	if err != nil {
		return ""
	}
	switch r.endpoint {
	case "keys", "keys/config", "keys/rotate", "keys/trim":
		return r.name
	case "encrypt":
		if _, ok := b.view.Get(b.mount.UUID, r.name); ok {
			return ""
		}
		return r.name
	case "restore":
		if r.name != "" {
			return r.name
		}
		if s, err := engines.String(req.Data, "backup", ""); err == nil {
			if bk, err := decodeBackup(s); err == nil {
				return bk.Name
			}
		}
	}
	return ""
}

// subject is the aggregate of a key's events.
func (b *Backend) subject(name string) string {
	return ledger.SubjectFor("transit", b.mount.UUID, name)
}

func (b *Backend) event(req *engines.Request, typ, name string, payload any) (ledger.Event, error) {
	p, err := json.Marshal(payload)
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode %s: %w", typ, err)
	}
	ev := ledger.Event{Type: typ, Subject: b.subject(name), Time: req.Now, Request: req.ID, Payload: p}
	if req.Caller != nil {
		ev.Actor = req.Caller.Accessor
	}
	return ev, nil
}

// lookup returns a key or Vault's 400 for a missing one, with the message the endpoint uses.
func (b *Backend) lookup(name, notFound string) (transitview.Key, error) {
	k, ok := b.view.Get(b.mount.UUID, name)
	if !ok {
		return k, engines.BadRequest("%s", notFound)
	}
	return k, nil
}

// --- field helpers ---

// decodeB64 decodes a standard base64 request field; the error names the field and the
// position of the bad byte only, never the value.
func decodeB64(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, engines.BadRequest("unable to decode %s as base64: %s", field, err)
	}
	return b, nil
}

// itemString reads a string field of a batch item: absent and null are "", other types a 400.
func itemString(item map[string]any, i int, key string) (string, bool, error) {
	v, ok := item[key]
	if !ok || v == nil {
		return "", ok, nil
	}
	s, isString := v.(string)
	if !isString {
		return "", true, engines.BadRequest("'[%d].%s' expected type 'string', got unconvertible type '%T'", i, key, v)
	}
	return s, true, nil
}

// batchInput returns the items of batch_input, or nil when the request has none.
func batchInput(data map[string]any) ([]map[string]any, bool, error) {
	raw, ok := data["batch_input"]
	if !ok || raw == nil {
		return nil, false, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, true, engines.BadRequest("failed to parse batch input: source data must be an array or slice, got %T", raw)
	}
	if len(list) == 0 {
		return nil, true, engines.BadRequest("missing batch input to process")
	}
	items := make([]map[string]any, len(list))
	for i, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, true, engines.BadRequest("failed to parse batch input: [%d] expected a map, got '%T'", i, e)
		}
		items[i] = m
	}
	return items, true, nil
}

// message is the client-visible text of a user error; internal errors are returned as such.
func message(err error) (string, bool) {
	if isUserError(err) {
		return err.Error(), true
	}
	return "", false
}

func isUserError(err error) bool { return errors.Is(err, engines.ErrBadRequest) }

// ts formats a time as Vault's JSON does.
func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
