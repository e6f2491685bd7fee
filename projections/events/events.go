// Package events derives Vault-style change events from the log: each committed KV event
// (kv.version.written.v1, kv.versions.deleted.v1, …) becomes one CloudEvents JSON document in
// the shape Vault's sys/events/subscribe sends, with the event type Vault uses
// ("kv-v2/data-write", "kv-v1/delete", …). It is a pure projection: Translate looks only at the
// record and the mount it names, does no I/O and holds no state, so the same log position
// always yields the same event (same id), which is what lets a subscriber resume from a
// position without gaps or duplicates.
package events

import (
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
	kvview "github.com/ledger-secrets/ledger/projections/kv"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Event types, as Vault names them.
const (
	KVv2DataWrite      = "kv-v2/data-write"
	KVv2DataPatch      = "kv-v2/data-patch"
	KVv2DataDelete     = "kv-v2/data-delete"
	KVv2Delete         = "kv-v2/delete"
	KVv2Undelete       = "kv-v2/undelete"
	KVv2Destroy        = "kv-v2/destroy"
	KVv2MetadataWrite  = "kv-v2/metadata-write"
	KVv2MetadataPatch  = "kv-v2/metadata-patch"
	KVv2MetadataDelete = "kv-v2/metadata-delete"
	KVv1Write          = "kv-v1/write"
	KVv1Delete         = "kv-v1/delete"
)

// Types lists every event type Ledger emits.
var Types = []string{KVv2DataWrite, KVv2DataPatch, KVv2DataDelete, KVv2Delete, KVv2Undelete, KVv2Destroy,
	KVv2MetadataWrite, KVv2MetadataPatch, KVv2MetadataDelete, KVv1Write, KVv1Delete}

// Source is the CloudEvents source of every event.
const Source = "https://vaultproject.io/"

// Event is one change event in Vault's CloudEvents JSON shape. Metadata values are strings,
// as in Vault. LedgerPos is a CloudEvents extension attribute (lower-case letters only, as the
// spec requires) holding the log position "seq.index" a subscriber resumes after.
type Event struct {
	ID              string    `json:"id"`
	Source          string    `json:"source"`
	SpecVersion     string    `json:"specversion"`
	Type            string    `json:"type"` // the subscription's pattern, as Vault sets it
	Data            Data      `json:"data"`
	DataContentType string    `json:"datacontentype"` // Vault's spelling
	Time            time.Time `json:"time"`
	LedgerPos       string    `json:"ledgerpos"`
}

// Data is the event's payload.
type Data struct {
	Event      Inner      `json:"event"`
	EventType  string     `json:"event_type"`
	PluginInfo PluginInfo `json:"plugin_info"`
}

// Inner is data.event.
type Inner struct {
	ID       string            `json:"id"`
	Metadata map[string]string `json:"metadata"`
}

// PluginInfo names the mount that produced the event.
type PluginInfo struct {
	MountClass    string `json:"mount_class"`
	MountAccessor string `json:"mount_accessor"`
	MountPath     string `json:"mount_path"`
	Plugin        string `json:"plugin"`
	Version       string `json:"version,omitempty"`
}

// EventType is data.event_type.
func (e Event) EventType() string { return e.Data.EventType }

// DataPath is the path a subscriber's ACL is checked against (metadata "data_path").
func (e Event) DataPath() string { return e.Data.Event.Metadata["data_path"] }

// Path is the request path of the change (metadata "path").
func (e Event) Path() string { return e.Data.Event.Metadata["path"] }

// Pos formats a log position as events carry it.
func Pos(p ledger.Position) string { return fmt.Sprintf("%d.%d", p.Seq, p.Index) }

// ParsePos reads "seq" or "seq.index". A bare sequence means the whole batch at seq.
func ParsePos(s string) (ledger.Position, bool, error) {
	seq, idx, hasIdx := strings.Cut(s, ".")
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil || n == 0 {
		return ledger.Position{}, false, fmt.Errorf("position %q: expected a log sequence such as 42 or a position such as 42.3", s)
	}
	if !hasIdx {
		return ledger.Position{Seq: n}, false, nil
	}
	i, err := strconv.ParseUint(idx, 10, 32)
	if err != nil {
		return ledger.Position{}, false, fmt.Errorf("position %q: expected a log sequence such as 42 or a position such as 42.3", s)
	}
	return ledger.Position{Seq: n, Index: uint32(i)}, true, nil
}

// Mounts finds a mount by UUID; the live mount view serves it.
type Mounts interface {
	List() []mount.Entry
}

// Relevant reports whether a record's type can become an event, so callers open (decrypt)
// only those.
func Relevant(typ string) bool {
	switch typ {
	case kvview.VersionWritten, kvview.VersionsDeleted, kvview.VersionsUndeleted, kvview.VersionsDestroyed,
		kvview.MetadataWritten, kvview.MetadataDeleted, kvview.V1Written, kvview.V1Deleted:
		return true
	}
	return false
}

// Translate turns a committed record into its change event. ok is false for records that are
// not changes Vault reports, and for changes of a mount that no longer exists (its path, the
// thing an ACL is checked against, is gone with it).
func Translate(rec ledger.Record, mounts Mounts) (Event, bool, error) {
	if !Relevant(rec.Type) {
		return Event{}, false, nil
	}
	var head struct {
		Mount string `json:"mount"`
		Path  string `json:"path"`
	}
	if err := json.Unmarshal(rec.Payload, &head); err != nil {
		return Event{}, false, fmt.Errorf("decode %s: %w", rec.Type, err)
	}
	m, ok := byUUID(mounts, head.Mount)
	if !ok {
		return Event{}, false, nil
	}
	md := map[string]string{"modified": "true"}
	var typ, route string
	v2 := true
	switch rec.Type {
	case kvview.VersionWritten:
		var p kvview.VersionWrittenPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return Event{}, false, fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		typ, route = KVv2DataWrite, "data/"
		if p.Patch {
			typ = KVv2DataPatch
		}
		md["current_version"] = strconv.FormatUint(p.Version, 10)
		md["oldest_version"] = strconv.FormatUint(p.Oldest, 10)
	case kvview.VersionsDeleted, kvview.VersionsUndeleted, kvview.VersionsDestroyed:
		var p kvview.VersionsPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return Event{}, false, fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		vs, _ := json.Marshal(p.Versions)
		switch rec.Type {
		case kvview.VersionsDeleted:
			typ, route = KVv2Delete, "delete/"
			if p.Latest {
				typ, route = KVv2DataDelete, "data/"
			}
			md["deleted_versions"] = string(vs)
		case kvview.VersionsUndeleted:
			typ, route = KVv2Undelete, "undelete/"
			md["undeleted_versions"] = string(vs)
		default:
			typ, route = KVv2Destroy, "destroy/"
			md["destroyed_versions"] = string(vs)
		}
	case kvview.MetadataWritten:
		var p kvview.MetadataWrittenPayload
		if err := json.Unmarshal(rec.Payload, &p); err != nil {
			return Event{}, false, fmt.Errorf("decode %s: %w", rec.Type, err)
		}
		typ, route = KVv2MetadataWrite, "metadata/"
		if p.Patch {
			typ = KVv2MetadataPatch
		}
	case kvview.MetadataDeleted:
		typ, route = KVv2MetadataDelete, "metadata/"
		v2 = m.Options["version"] == "2"
		if !v2 {
			return Event{}, false, nil
		}
	case kvview.V1Written:
		typ, v2 = KVv1Write, false
	case kvview.V1Deleted:
		typ, v2 = KVv1Delete, false
	}
	op := typ[strings.IndexByte(typ, '/')+1:]
	md["operation"] = op
	info := PluginInfo{MountClass: "secret", MountAccessor: m.Accessor, MountPath: m.Path, Plugin: "kv", Version: "1"}
	if v2 {
		info.Version = "2"
		md["path"] = m.Path + route + head.Path
		md["data_path"] = m.Path + "data/" + head.Path
	} else {
		md["path"] = m.Path + head.Path
		md["data_path"] = md["path"]
	}
	t := rec.Time.UTC()
	return Event{
		ID: rec.ID, Source: Source, SpecVersion: "1.0",
		Data: Data{
			Event:      Inner{ID: rec.ID, Metadata: md},
			EventType:  typ,
			PluginInfo: info,
		},
		DataContentType: "application/cloudevents",
		Time:            t,
		LedgerPos:       Pos(rec.Pos),
	}, true, nil
}

func byUUID(mounts Mounts, uuid string) (mount.Entry, bool) {
	for _, e := range mounts.List() {
		if e.UUID == uuid {
			return e, true
		}
	}
	return mount.Entry{}, false
}

// Match reports whether an event type matches a subscription pattern: a glob where '*'
// matches any run of characters, '/' included ("kv*", "kv-v2/*", "*").
func Match(pattern, typ string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == typ
	}
	// path.Match stops '*' at '/', so split the pattern on '*' and match the pieces in order.
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(typ, parts[0]) {
		return false
	}
	rest := typ[len(parts[0]):]
	for i, p := range parts[1:] {
		last := i == len(parts)-2
		if last {
			return strings.HasSuffix(rest, p)
		}
		j := strings.Index(rest, p)
		if j < 0 {
			return false
		}
		rest = rest[j+len(p):]
	}
	return true
}

// ValidPattern checks a subscription pattern: event-type characters and '*' only.
func ValidPattern(p string) error {
	if p == "" || len(p) > 256 {
		return fmt.Errorf("event type pattern must be 1 to 256 characters")
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_/.*", r)) {
			return fmt.Errorf("event type pattern %q: only letters, digits, '-', '_', '/', '.' and '*' are allowed", p)
		}
	}
	if path.Clean("/"+p) != "/"+p {
		return fmt.Errorf("event type pattern %q is not a clean path", p)
	}
	return nil
}
