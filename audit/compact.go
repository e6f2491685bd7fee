package audit

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/ledger-secrets/ledger/ledger"
)

// A write's record travels in the write's own batch of the event log, and was about half of
// what the log holds per write (1.1 KB of JSON of ~2.3 KB, most of it keys, mount fields and
// the hex of HMACs).
// Every byte of the log is read again by JetStream when it recovers after a crash, and kept on
// disk for good. So the record is stored compressed there: s2 (github.com/klauspost/compress,
// in the build already through nats-server) against a fixed dictionary of what records repeat.
// A KV write's record goes from 1,152 to 561 bytes for 2.3 µs of CPU; zstd with the same
// dictionary made 381 bytes but took 19 µs, flate 36 µs (BENCHMARKS.md, session 26).
//
// Read records (LEDGER_AUDIT) stay plain JSON: every read makes one, and its share of a read's
// CPU is what the read benchmark measures.
//
// Compression is applied to one record at a time, before the record is sealed. A record holds
// HMACs, never a secret, except values an operator listed in audit_non_hmac_*_keys, which come
// from the request or response the record describes; so the only caller-chosen text a record
// shares a compression window with is that caller's own request. Nothing in one record can
// probe another's content through its length.

// compactV1 is the first byte of a compressed record: s2 block format against compactDictV1.
// A record's JSON always starts with '{'.
const compactV1 = 0x01

// compactDictV1 is the dictionary of compactV1. Records stored under it must stay readable:
// never edit it; a better dictionary gets a new first byte, and Decode keeps reading both.
const compactDictV1 = `"warnings":["` +
	`"raw_request_keys":["","raw_response_keys":["","error":"permission denied",` +
	`"secret":{"lease_id":"database/creds/","lease_duration":3600,"renewable":true},` +
	`"response":{"auth":{"client_token":"hmac-sha256:","accessor":"hmac-sha256:","display_name":"approle",` +
	`"policies":["default"],"token_policies":["default"],"metadata":{"role_name":"","username":""},"entity_id":"",` +
	`"token_type":"service","token_ttl":2764800,"token_issue_time":"2026-01-01T00:00:00Z"},` +
	`"data":{"certificate":"hmac-sha256:","private_key":"hmac-sha256:","serial_number":"hmac-sha256:",` +
	`"ciphertext":"hmac-sha256:","plaintext":"hmac-sha256:","username":"hmac-sha256:","password":"hmac-sha256:",` +
	`"created_time":"hmac-sha256:","custom_metadata":null,"deletion_time":"hmac-sha256:","destroyed":false,"version":1}},` +
	`{"time":"2026-01-01T00:00:00.000000000Z","auth":{"display_name":"token","policies":["default","root"],` +
	`"policy_results":{"allowed":true},"metadata":{},"entity_id":"00000000-0000-0000-0000-000000000000",` +
	`"remaining_uses":0,"token_type":"service","token_ttl":3600,"token_issue_time":"2026-01-01T00:00:00Z"},` +
	`"request":{"id":"00000000-0000-0000-0000-000000000000","operation":"update","operation":"delete",` +
	`"mount_point":"auth/token/","mount_type":"token","mount_class":"auth","mount_point":"sys/","mount_type":"system",` +
	`"mount_point":"secret/","mount_type":"kv","mount_accessor":"kv_00000000","mount_class":"secret",` +
	`"operation":"create","client_token":"hmac-sha256:","client_token_accessor":"","path":"secret/metadata/",` +
	`"path":"secret/data/","data":{"options":{"cas":0},"data":{"password":"hmac-sha256:","username":"hmac-sha256:"}},` +
	`"remote_address":"127.0.0.1","remote_port":0},"response":{"data":{"created_time":"hmac-sha256:",` +
	`"custom_metadata":null,"deletion_time":"hmac-sha256:","destroyed":false,"version":1}},"packed":true}`

// compactDictV1SHA256 pins compactDictV1 (TestCompactDictionaryUnchanged).
const compactDictV1SHA256 = "4973b8bf1e439648280145b4e5108d52881b5458c2bff2a0735b4293ecb415a1"

var compactDict = func() *s2.Dict {
	d := s2.MakeDict([]byte(compactDictV1), []byte(`{"time":"`))
	if d == nil {
		panic("audit: the record dictionary does not build")
	}
	return d
}()

// compactRecord compresses a record's JSON (see compactV1).
func compactRecord(json []byte) []byte {
	out := make([]byte, 1+s2.MaxEncodedLen(len(json)))
	out[0] = compactV1
	enc := compactDict.Encode(out[1:], json)
	if len(enc) > 0 && &enc[0] != &out[1] {
		copy(out[1:], enc)
	}
	return out[: 1+len(enc) : 1+len(enc)]
}

// expandRecord returns a stored record's JSON: as it is, or decompressed. A compressed record
// that claims more than MaxRecordBytes is refused unread.
func expandRecord(payload []byte) ([]byte, error) {
	if len(payload) == 0 || payload[0] != compactV1 {
		return payload, nil
	}
	n, err := s2.DecodedLen(payload[1:])
	if err != nil {
		return nil, fmt.Errorf("compressed audit record: %w", err)
	}
	if n > MaxRecordBytes {
		return nil, errors.New("compressed audit record: claims more than the record bound")
	}
	b, err := compactDict.Decode(nil, payload[1:])
	if err != nil {
		return nil, fmt.Errorf("compressed audit record: %w", err)
	}
	return b, nil
}

// CompactEvent is Event with the record compressed: the form a write's record takes in the
// write's own batch of the log. Decode reads both forms.
func (r Record) CompactEvent() (ledger.Event, error) {
	ev, err := r.Event()
	if err != nil {
		return ev, err
	}
	ev.Payload = compactRecord(ev.Payload)
	return ev, nil
}
