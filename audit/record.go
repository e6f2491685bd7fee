// Package audit owns Ledger's audit trail: the records of requests in Vault's audit JSON format
// (derived from the write events and from the LEDGER_AUDIT stream of reads and denials), the
// HMAC of their sensitive strings, the audit devices — durable JetStream consumers that ship
// records to files, syslog, sockets and SIEMs, each at its own pace, with nothing lost and
// nothing duplicated — the view of enabled devices and checkpoints, the tamper-evidence
// checkpoints and the verification of the log's hash chain, and queries over the records.
//
// A record is stored once, at request time, with every sensitive string already HMACed: the
// log never holds a token, a secret value or anything that could be un-HMACed. What a device
// may still choose is only what it was allowed to choose when the record was made (see
// Record.RawRequestKeys and hmac_accessor).
package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

// Event types of the audit trail.
const (
	// Recorded carries one request's Record. In the log it travels inside the batch of the write
	// it describes; in LEDGER_AUDIT it is the record of a read, a denial or a failure.
	Recorded = "audit.recorded.v1"
	// DeviceEnabled and DeviceDisabled change the set of audit devices (payload: Device).
	DeviceEnabled  = "audit.device.enabled.v1"
	DeviceDisabled = "audit.device.disabled.v1"
	// Checkpointed vouches for the hash of the log's batch at a sequence (payload: Checkpoint).
	Checkpointed = "audit.checkpoint.v1"
)

// The stream of read and denial records. A single node writes StreamSubject; each node of a
// cluster writes its own NodeSubject, a hash chain of its own (Verify checks per subject).
const (
	StreamName    = "LEDGER_AUDIT"
	StreamSubject = "ledger_audit.batch"
)

// StreamSubjects are the audit stream's subjects: the single node's and every cluster node's.
func StreamSubjects() []string { return []string{StreamSubject, StreamSubject + ".>"} }

// NodeSubject is the audit subject of a cluster node: its name, with whatever a NATS subject
// token may not hold replaced by '_'.
func NodeSubject(node string) string {
	b := []byte(node)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		b = []byte("_")
	}
	return StreamSubject + "." + string(b)
}

// Subject is the log subject of audit events.
var Subject = ledger.SubjectFor("audit", "trail")

// HMACPrefix marks an HMACed string, as in Vault.
const HMACPrefix = "hmac-sha256:"

// HMAC is the audit HMAC of value under the keyring: what sys/audit-hash answers and what every
// record carries in place of a sensitive string.
func HMAC(kr *ledger.Keyring, value string) string {
	return kr.PrefixedMAC(HMACPrefix, "audit", value)
}

// Record is the audit trail of one request as the log stores it. Sensitive strings are HMACed
// already; accessors are kept as they are (an accessor is not a credential, and the event
// header carries it anyway) so that each device applies its own hmac_accessor, and queries can
// find a token's requests by accessor.
type Record struct {
	Time     time.Time `json:"time"`
	Auth     *Auth     `json:"auth,omitempty"`
	Request  *Request  `json:"request"`
	Response *Response `json:"response,omitempty"`
	Error    string    `json:"error,omitempty"`
	// RawRequestKeys and RawResponseKeys are the data keys left un-HMACed because an audit
	// device enabled at the time listed them in audit_non_hmac_request_keys (…response_keys).
	// Every other device HMACs them when it emits the record.
	RawRequestKeys  []string `json:"raw_request_keys,omitempty"`
	RawResponseKeys []string `json:"raw_response_keys,omitempty"`
	// Packed says the record was stored without what repeats the request block: the auth
	// block's client_token, accessor and token_policies (the request's token, its accessor and
	// the policies), the response's mount fields and the root namespace. Decode puts them back;
	// a decoded record is never packed. A read's record is a fifth smaller for it, and every
	// byte of it goes through the audit stream's writer, JetStream and its recovery.
	Packed bool `json:"packed,omitempty"`
}

// unpack puts back what a packed record left out (see Packed).
func (r *Record) unpack() {
	r.Packed = false
	q := r.Request
	if q.Namespace == nil {
		q.Namespace = &Namespace{ID: "root"}
	}
	if a := r.Auth; a != nil {
		a.ClientToken, a.Accessor = q.ClientToken, q.ClientTokenAccessor
		a.TokenPolicies = a.Policies
	}
	if p := r.Response; p != nil {
		p.MountPoint, p.MountType, p.MountAccessor, p.MountClass = q.MountPoint, q.MountType, q.MountAccessor, q.MountClass
	}
}

// Auth is the "auth" block of an audit entry.
type Auth struct {
	ClientToken    string            `json:"client_token,omitempty"`
	Accessor       string            `json:"accessor,omitempty"`
	DisplayName    string            `json:"display_name,omitempty"`
	Policies       []string          `json:"policies,omitempty"`
	TokenPolicies  []string          `json:"token_policies,omitempty"`
	PolicyResults  *PolicyResults    `json:"policy_results,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	EntityID       string            `json:"entity_id,omitempty"`
	RemainingUses  int               `json:"remaining_uses,omitempty"`
	TokenType      string            `json:"token_type,omitempty"`
	TokenTTL       int64             `json:"token_ttl,omitempty"`
	TokenIssueTime string            `json:"token_issue_time,omitempty"`
}

// PolicyResults says whether the ACL allowed the request.
type PolicyResults struct {
	Allowed bool `json:"allowed"`
}

// Namespace is Vault's namespace block; Ledger has only the root namespace.
type Namespace struct {
	ID string `json:"id"`
}

// Request is the "request" block of an audit entry.
type Request struct {
	ID                  string         `json:"id"`
	Operation           string         `json:"operation"`
	MountPoint          string         `json:"mount_point,omitempty"`
	MountType           string         `json:"mount_type,omitempty"`
	MountAccessor       string         `json:"mount_accessor,omitempty"`
	MountClass          string         `json:"mount_class,omitempty"`
	ClientToken         string         `json:"client_token,omitempty"`
	ClientTokenAccessor string         `json:"client_token_accessor,omitempty"`
	Namespace           *Namespace     `json:"namespace,omitempty"`
	Path                string         `json:"path"`
	Data                map[string]any `json:"data,omitempty"`
	// Hashed, when set, is what a record built for the log stores as its data instead of
	// Data (see AppendHashedData); a decoded record has Data only.
	Hashed        HashedData `json:"-"`
	RemoteAddress string     `json:"remote_address,omitempty"`
	RemotePort    int        `json:"remote_port,omitempty"`
}

// Response is the "response" block of an audit entry.
type Response struct {
	MountPoint    string         `json:"mount_point,omitempty"`
	MountType     string         `json:"mount_type,omitempty"`
	MountAccessor string         `json:"mount_accessor,omitempty"`
	MountClass    string         `json:"mount_class,omitempty"`
	Auth          *Auth          `json:"auth,omitempty"`
	Secret        *Secret        `json:"secret,omitempty"`
	Data          map[string]any `json:"data,omitempty"`
	Hashed        HashedData     `json:"-"` // as Request.Hashed
	Warnings      []string       `json:"warnings,omitempty"`
}

// Secret is the lease of a dynamic secret.
type Secret struct {
	LeaseID string `json:"lease_id"`
}

// Position is where a record sits: the stream, the batch's sequence and the event's index.
type Position struct {
	Stream string `json:"stream"`
	Seq    uint64 `json:"seq"`
	Index  uint32 `json:"index"`
}

func (p Position) String() string { return fmt.Sprintf("%s:%d.%d", p.Stream, p.Seq, p.Index) }

// after orders positions of one stream, the request entry (part 0) before the response (1).
func after(p Position, part int, q Position, qpart int) bool {
	if p.Seq != q.Seq {
		return p.Seq > q.Seq
	}
	if p.Index != q.Index {
		return p.Index > q.Index
	}
	return part > qpart
}

// Entry is one line of an audit device: a request or a response entry in Vault's audit JSON.
// Ledger adds "ledger", the record's position, so a reader can deduplicate and find the record
// in the log (`ledger audit verify` names sequences).
type Entry struct {
	Time     string    `json:"time"`
	Type     string    `json:"type"`
	Auth     *Auth     `json:"auth,omitempty"`
	Request  *Request  `json:"request,omitempty"`
	Response *Response `json:"response,omitempty"`
	Error    string    `json:"error,omitempty"`
	Ledger   *Position `json:"ledger,omitempty"`
}

// Part is 0 for a request entry, 1 for a response entry.
func (e Entry) Part() int {
	if e.Type == "response" {
		return 1
	}
	return 0
}

// Decode reads a Recorded event's payload, plain JSON or compressed (CompactEvent).
func Decode(payload []byte) (Record, error) {
	var r Record
	payload, err := expandRecord(payload)
	if err != nil {
		return Record{}, fmt.Errorf("decode audit record: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("decode audit record: %w", err)
	}
	if r.Request == nil {
		return Record{}, fmt.Errorf("decode audit record: no request")
	}
	if r.Packed {
		r.unpack()
	}
	return r, nil
}

// Event wraps a record into the event that stores it.
//
// The record is encoded field by field (recordjson.go): encoding/json's output for the same
// value, without reflection, and with a data block HMACed while it was encoded (Hashed)
// copied in as it is. A record is built for every request, reads included (BENCHMARKS.md,
// issue 10).
func (r Record) Event() (ledger.Event, error) { return r.EventInto(nil) }

// EventInto is Event encoding the record into buf's room (growing it as needed): a caller that
// appends the event and is done with its payload can reuse one buffer for many records. The
// payload aliases buf when it fits; it holds HMACs and any values kept in the clear, so the
// caller clears buf before reusing it.
func (r Record) EventInto(buf []byte) (ledger.Event, error) {
	b, err := r.appendJSON(buf[:0])
	if err != nil {
		return ledger.Event{}, fmt.Errorf("encode audit record: %w", err)
	}
	if b, err = r.bounded(b); err != nil {
		return ledger.Event{}, fmt.Errorf("encode audit record: %w", err)
	}
	return ledger.Event{Type: Recorded, Subject: Subject, Time: r.Time, Payload: b}, nil
}

// Format is how one device writes entries: which strings it HMACs beyond what the record holds
// HMACed already.
type Format struct {
	// HMACAccessor HMACs token accessors (Vault's default).
	HMACAccessor bool
	// NonHMACRequestKeys and NonHMACResponseKeys are data keys the device leaves in the clear,
	// when the record kept them in the clear (see Record.RawRequestKeys).
	NonHMACRequestKeys  map[string]bool
	NonHMACResponseKeys map[string]bool
}

// DefaultFormat is Vault's default: accessors HMACed, every data string HMACed.
var DefaultFormat = Format{HMACAccessor: true}

// Entries turns a record into its request and response entries, as the device with format f
// writes them. kr supplies the HMAC key for what f HMACs beyond the record.
func (r Record) Entries(kr *ledger.Keyring, f Format, pos *Position) []Entry {
	h := func(s string) string {
		if s == "" {
			return s
		}
		return HMAC(kr, s)
	}
	auth := copyAuth(r.Auth)
	req := *r.Request
	req.Data = emitData(h, r.Request.Data, set(r.RawRequestKeys), f.NonHMACRequestKeys)
	var resp *Response
	if r.Response != nil {
		cp := *r.Response
		cp.Auth = copyAuth(r.Response.Auth)
		cp.Data = emitData(h, r.Response.Data, set(r.RawResponseKeys), f.NonHMACResponseKeys)
		resp = &cp
	}
	if f.HMACAccessor {
		if auth != nil {
			auth.Accessor = h(auth.Accessor)
		}
		req.ClientTokenAccessor = h(req.ClientTokenAccessor)
		if resp != nil && resp.Auth != nil {
			resp.Auth.Accessor = h(resp.Auth.Accessor)
		}
	}
	ts := r.Time.UTC().Format(time.RFC3339Nano)
	reqEntry := Entry{Time: ts, Type: "request", Auth: auth, Request: &req, Error: r.Error, Ledger: pos}
	respEntry := Entry{Time: ts, Type: "response", Auth: auth, Request: &req, Response: resp, Error: r.Error, Ledger: pos}
	if respEntry.Response == nil {
		respEntry.Response = &Response{MountPoint: req.MountPoint, MountType: req.MountType, MountAccessor: req.MountAccessor, MountClass: req.MountClass}
	}
	return []Entry{reqEntry, respEntry}
}

func copyAuth(a *Auth) *Auth {
	if a == nil {
		return nil
	}
	cp := *a
	return &cp
}

func set(keys []string) map[string]bool {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[k] = true
	}
	return m
}
