package kv

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"
	"unicode"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
)

// metadata/:path — a path's settings and version history; DELETE removes everything; LIST.

func (b *Backend) handleMetadata(req *engines.Request, path string) (*engines.Response, error) {
	if req.Op == engines.OpList {
		return b.list(path)
	}
	if err := checkPath(path); err != nil {
		return nil, err
	}
	switch {
	case req.Op == engines.OpRead:
		return b.readMetadata(path)
	case isWrite(req.Op):
		return b.writeMetadata(req, path, false)
	case req.Op == engines.OpPatch:
		return b.writeMetadata(req, path, true)
	case req.Op == engines.OpDelete:
		return b.deleteMetadata(req, path)
	}
	return nil, unsupported()
}

// list answers LIST for KV v1 paths and KV v2 metadata paths. An empty listing is a 404.
func (b *Backend) list(prefix string) (*engines.Response, error) {
	keys := b.view.List(b.mount.UUID, prefix)
	if len(keys) == 0 {
		return nil, engines.ErrNotFound
	}
	return respond(map[string]any{"keys": keys}), nil
}

func (b *Backend) readMetadata(path string) (*engines.Response, error) {
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return nil, engines.ErrNotFound
	}
	versions := make(map[string]any, len(s.Versions))
	for n, v := range s.Versions {
		versions[strconv.FormatUint(n, 10)] = map[string]any{
			"created_time":  ts(v.Created),
			"deletion_time": ts(v.Deletion),
			"destroyed":     v.Destroyed,
		}
	}
	return respond(map[string]any{
		"versions":             versions,
		"current_version":      s.CurrentVersion,
		"oldest_version":       s.OldestVersion,
		"created_time":         ts(s.Created),
		"updated_time":         ts(s.Updated),
		"max_versions":         s.MaxVersions,
		"cas_required":         s.CASRequired,
		"delete_version_after": s.DeleteVersionAfter.String(),
		"custom_metadata":      customMetadata(s.CustomMetadata),
	}), nil
}

// Limits on custom_metadata, as Vault.
const (
	maxCustomMetadataKeys        = 64
	maxCustomMetadataKeyLength   = 128
	maxCustomMetadataValueLength = 512
)

// customMetadataArg reads custom_metadata: an object whose values are strings (numbers and
// booleans are taken as their text). With patch, a null value removes the key (returned in
// removed).
func customMetadataArg(data map[string]any, patch bool) (set map[string]string, removed []string, err error) {
	raw := data["custom_metadata"]
	obj, ok := raw.(map[string]any)
	if !ok {
		if raw == nil {
			return map[string]string{}, nil, nil
		}
		return nil, nil, engines.BadRequest("custom_metadata validation failed: expected an object of strings")
	}
	set = make(map[string]string, len(obj))
	for k, v := range obj {
		switch t := v.(type) {
		case nil:
			if patch {
				removed = append(removed, k)
				continue
			}
			set[k] = ""
		case string:
			set[k] = t
		case json.Number:
			set[k] = t.String()
		case float64:
			set[k] = strconv.FormatFloat(t, 'f', -1, 64)
		case bool:
			set[k] = strconv.FormatBool(t)
		default:
			return nil, nil, engines.BadRequest("custom_metadata validation failed: value for key %q must be a string", k)
		}
	}
	return set, removed, nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// validateCustomMetadata applies Vault's limits and names every key at fault (never a value).
func validateCustomMetadata(m map[string]string) error {
	const prefix = "custom_metadata validation failed"
	if len(m) > maxCustomMetadataKeys {
		return engines.BadRequest("%s: payload must contain at most %d keys, provided %d", prefix, maxCustomMetadataKeys, len(m))
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var msgs []string
	for _, k := range keys {
		v := m[k]
		if n := len(k); n == 0 || n > maxCustomMetadataKeyLength {
			msgs = append(msgs, fmt.Sprintf("length of key %q is %d but must be 0 < len(key) <= %d", k, n, maxCustomMetadataKeyLength))
		}
		if n := len(v); n == 0 || n > maxCustomMetadataValueLength {
			msgs = append(msgs, fmt.Sprintf("length of value for key %q is %d but must be 0 < len(value) <= %d", k, n, maxCustomMetadataValueLength))
		}
		if !printable(k) {
			msgs = append(msgs, fmt.Sprintf("key %q contains unprintable characters", k))
		}
		if !printable(v) {
			msgs = append(msgs, fmt.Sprintf("value for key %q contains unprintable characters", k))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	out := prefix + ": " + msgs[0]
	for _, m := range msgs[1:] {
		out += "; " + m
	}
	return engines.BadRequest("%s", out)
}

// nonNegativeInt reads an integer field that cannot be negative.
func nonNegativeInt(data map[string]any, key string) (int, error) {
	n, err := engines.Int(data, key, 0)
	if err != nil {
		return 0, err
	}
	if n < 0 {
		return 0, engines.BadRequest("field %q: must not be negative", key)
	}
	return n, nil
}

// writeMetadata sets a path's settings (POST creates the path when needed; PATCH needs it to
// exist and changes only what it names, merging custom_metadata).
func (b *Backend) writeMetadata(req *engines.Request, path string, patch bool) (*engines.Response, error) {
	d := req.Data
	if !engines.Has(d, "max_versions") && !engines.Has(d, "cas_required") &&
		!engines.Has(d, "delete_version_after") && !engines.Has(d, "custom_metadata") {
		if patch {
			if _, ok := b.view.Secret(b.mount.UUID, path); !ok {
				return nil, engines.ErrNotFound
			}
		}
		return &engines.Response{Warnings: ignored(d)}, nil
	}
	maxV, err := nonNegativeInt(d, "max_versions")
	if err != nil {
		return nil, err
	}
	cas, err := engines.Bool(d, "cas_required", false)
	if err != nil {
		return nil, err
	}
	dva, err := engines.Duration(d, "delete_version_after", 0)
	if err != nil {
		return nil, err
	}
	cm, removed, err := customMetadataArg(d, patch)
	if err != nil {
		return nil, err
	}

	s, exists := b.view.Secret(b.mount.UUID, path)
	if patch && !exists {
		return nil, engines.ErrNotFound
	}
	p := kvview.MetadataWrittenPayload{
		Mount: b.mount.UUID, Path: path, Created: req.Now.UTC(),
		MaxVersions: s.MaxVersions, CASRequired: s.CASRequired, DeleteVersionAfter: s.DeleteVersionAfter,
		CustomMetadata: s.CustomMetadata, Patch: patch,
	}
	if engines.Has(d, "max_versions") {
		p.MaxVersions = maxV
	}
	if engines.Has(d, "cas_required") {
		p.CASRequired = cas
	}
	if engines.Has(d, "delete_version_after") {
		p.DeleteVersionAfter = dva
	}
	if engines.Has(d, "custom_metadata") {
		if patch {
			merged := map[string]string{}
			for k, v := range s.CustomMetadata {
				merged[k] = v
			}
			for k, v := range cm {
				merged[k] = v
			}
			for _, k := range removed {
				delete(merged, k)
			}
			cm = merged
		}
		if err := validateCustomMetadata(cm); err != nil {
			return nil, err
		}
		p.CustomMetadata = cm
	}
	ev, err := b.event(req, kvview.MetadataWritten, b.subject(path), p)
	if err != nil {
		return nil, err
	}
	resp := &engines.Response{Events: []ledger.Event{ev}}
	if engines.Has(d, "cas_required") && !cas && b.view.Config(b.mount.UUID).CASRequired {
		resp.Warnings = append(resp.Warnings, "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored.")
	}
	resp.Warnings = append(resp.Warnings, ignored(d, "max_versions", "cas_required", "delete_version_after", "custom_metadata")...)
	return resp, nil
}

// deleteMetadata removes the path with every version; their data keys are shredded.
func (b *Backend) deleteMetadata(req *engines.Request, path string) (*engines.Response, error) {
	s, ok := b.view.Secret(b.mount.UUID, path)
	if !ok {
		return &engines.Response{}, nil
	}
	var shred []string
	for _, n := range sortedVersions(s) {
		if id := s.Versions[n].KeyID; id != "" {
			shred = append(shred, id)
		}
	}
	ev, err := b.event(req, kvview.MetadataDeleted, b.subject(path), kvview.PathPayload{Mount: b.mount.UUID, Path: path, Shred: shred})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}}, nil
}

func sortedVersions(s kvview.Secret) []uint64 {
	out := make([]uint64, 0, len(s.Versions))
	for n := range s.Versions {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// --- config ---

func (b *Backend) handleConfig(req *engines.Request) (*engines.Response, error) {
	switch {
	case req.Op == engines.OpRead:
		c := b.view.Config(b.mount.UUID)
		return respond(map[string]any{
			"max_versions":         c.MaxVersions,
			"cas_required":         c.CASRequired,
			"delete_version_after": c.DeleteVersionAfter.String(),
		}), nil
	case isWrite(req.Op):
		return b.writeConfig(req)
	}
	return nil, unsupported()
}

func (b *Backend) writeConfig(req *engines.Request) (*engines.Response, error) {
	d := req.Data
	if !engines.Has(d, "max_versions") && !engines.Has(d, "cas_required") && !engines.Has(d, "delete_version_after") {
		return &engines.Response{Warnings: ignored(d)}, nil
	}
	c := b.view.Config(b.mount.UUID)
	if engines.Has(d, "max_versions") {
		n, err := nonNegativeInt(d, "max_versions")
		if err != nil {
			return nil, err
		}
		c.MaxVersions = n
	}
	if engines.Has(d, "cas_required") {
		v, err := engines.Bool(d, "cas_required", false)
		if err != nil {
			return nil, err
		}
		c.CASRequired = v
	}
	if engines.Has(d, "delete_version_after") {
		dva, err := signedDuration(d, "delete_version_after")
		if err != nil {
			return nil, err
		}
		switch {
		case dva < 0:
			c.DeleteVersionAfter = -time.Second // disabled, shown as "-1s" as Vault does
		default:
			c.DeleteVersionAfter = dva // 0 clears
		}
	}
	ev, err := b.event(req, kvview.ConfigWritten, ledger.SubjectFor("kv", b.mount.UUID), kvview.ConfigWrittenPayload{Mount: b.mount.UUID, Config: c})
	if err != nil {
		return nil, err
	}
	return &engines.Response{Events: []ledger.Event{ev}, Warnings: ignored(d, "max_versions", "cas_required", "delete_version_after")}, nil
}

// signedDuration is engines.Duration that also accepts a negative value ("-1s", -1).
func signedDuration(data map[string]any, key string) (time.Duration, error) {
	neg := false
	switch t := data[key].(type) {
	case string:
		if len(t) > 0 && t[0] == '-' {
			neg, data = true, map[string]any{key: t[1:]}
		}
	case json.Number:
		if len(t) > 0 && t[0] == '-' {
			neg, data = true, map[string]any{key: json.Number(t[1:])}
		}
	case float64:
		if t < 0 {
			neg, data = true, map[string]any{key: -t}
		}
	}
	d, err := engines.Duration(data, key, 0)
	if err != nil {
		return 0, err
	}
	if neg {
		return -d, nil
	}
	return d, nil
}
