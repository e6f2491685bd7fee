package projections

import (
	"encoding/binary"
	"math"
	"time"
)

// The large views (KV, fingerprints) snapshot in a compact binary encoding rather than JSON:
// decoding JSON spent seconds per 100,000 entries on reflection and base64, and encoding it
// held hundreds of megabytes. These are the pieces their formats share:
//
//	string, bytes = uvarint length, the bytes
//	bool          = 0x00 | 0x01 (one state, one encoding)
//	time          = 0x00 (zero) | 0x01 varint unix seconds, uvarint nanoseconds (UTC)

// AppendString appends s as uvarint length ‖ bytes.
func AppendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// StringLen is the size AppendString(s) appends.
func StringLen(s string) int { return UvarintLen(uint64(len(s))) + len(s) }

// UvarintLen is the size binary.AppendUvarint(x) appends.
func UvarintLen(x uint64) int {
	var buf [binary.MaxVarintLen64]byte
	return binary.PutUvarint(buf[:], x)
}

// TimeLen is the size AppendTime(t) appends.
func TimeLen(t time.Time) int {
	if t.IsZero() {
		return 1
	}
	var buf [binary.MaxVarintLen64]byte
	return 1 + binary.PutVarint(buf[:], t.Unix()) + UvarintLen(uint64(t.Nanosecond()))
}

// AppendBytes appends p as uvarint length ‖ bytes.
func AppendBytes(b, p []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(p))), p...)
}

// AppendBool appends v as one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendTime appends t in UTC, or 0x00 for the zero time.
func AppendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	t = t.UTC()
	return binary.AppendUvarint(binary.AppendVarint(append(b, 1), t.Unix()), uint64(t.Nanosecond()))
}

// Reader decodes a binary snapshot. The first error sticks (Err), and later reads return zero
// values, so a decoder reads on and checks once.
type Reader struct {
	b   []byte
	bad error // what a malformed input reports: the view's own error
	Err error
}

// NewReader reads data; a truncated or malformed input makes Err bad.
func NewReader(data []byte, bad error) *Reader { return &Reader{b: data, bad: bad} }

// Rest is the number of bytes not read yet.
func (r *Reader) Rest() int { return len(r.b) }

// Fail makes the input malformed.
func (r *Reader) Fail() { r.Err, r.b = r.bad, nil }

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	x, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	x, n := binary.Varint(r.b)
	if n <= 0 {
		r.Fail()
		return 0
	}
	r.b = r.b[n:]
	return x
}

// Count reads a length that must fit in what is left (every item takes at least one byte),
// so a corrupt count cannot make the decoder allocate without bound.
func (r *Reader) Count() int {
	x := r.Uvarint()
	if x > uint64(len(r.b)) {
		r.Fail()
		return 0
	}
	return int(x)
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.b) == 0 {
		r.Fail()
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// Bool reads a flag byte, which must be 0 or 1.
func (r *Reader) Bool() bool {
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail()
	return false
}

// Bytes reads length-prefixed bytes. The result aliases the input: copy what is kept, so a
// view does not keep the whole decoded snapshot alive through one value.
func (r *Reader) Bytes() []byte {
	n := r.Count()
	if r.Err != nil {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// Fixed reads exactly n bytes (aliasing the input).
func (r *Reader) Fixed(n int) []byte {
	if len(r.b) < n {
		r.Fail()
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// String reads a length-prefixed string (a copy).
func (r *Reader) String() string { return string(r.Bytes()) }

// Time reads what AppendTime wrote.
func (r *Reader) Time() time.Time {
	if !r.Bool() {
		return time.Time{}
	}
	sec, nsec := r.Varint(), r.Uvarint()
	if nsec >= 1e9 || sec == math.MinInt64 {
		r.Fail()
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// PackTime keeps t in 12 bytes instead of a time.Time's 24 (views hold one or two per secret):
// seconds since the zero time.Time (January 1, year 1, UTC) and nanoseconds, so zero fields are
// the zero time, as for a time.Time. UnpackTime gives it back in UTC.
func PackTime(t time.Time) (int64, uint32) {
	if t.IsZero() {
		return 0, 0
	}
	return t.Unix() - zeroUnix, uint32(t.Nanosecond())
}

// zeroUnix is the zero time.Time in Unix seconds.
var zeroUnix = time.Time{}.Unix()

// UnpackTime is the time PackTime kept.
func UnpackTime(sec int64, nsec uint32) time.Time {
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec+zeroUnix, int64(nsec)).UTC()
}
