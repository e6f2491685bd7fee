package kv

import (
	"bytes"
	"testing"
	"time"
	"unsafe"
)

func TestKeyIDKeepsEveryID(t *testing.T) {
	ms := newMountState()
	engine := "kv-9b2e4c1a-1111-4222-8333-444455556666.00112233445566778899aabbccddeeff"
	for _, id := range []string{
		engine,
		"kv-9b2e4c1a-1111-4222-8333-444455556666.ffeeddccbbaa99887766554433221100",
		"",
		"k",
		"no-dot-at-all-0011223344556677889900aabbccddeeff",
		".00112233445566778899aabbccddeeff",                  // no prefix
		"p.00112233445566778899AABBCCDDEEFF",                 // uppercase: not the engine's form
		"p.00112233445566778899aabbccddeef",                  // 31 digits
		"p.00112233445566778899aabbccddeeff0",                // 33 digits
		"p.0011223344556677889900aabbccddeg",                 // not hex
		"a.b.00112233445566778899aabbccddeeff",               // dots in the prefix
		"kv-import.legacy-id-from-an-earlier-build.v2-00001", // anything else
	} {
		k := ms.keyID(id)
		if got := k.String(); got != id {
			t.Errorf("keyID(%q).String() = %q", id, got)
		}
		if k.len() != len(id) {
			t.Errorf("keyID(%q).len() = %d", id, k.len())
		}
		if got := splitKeyID(ms, []byte(id)); got != k {
			t.Errorf("from bytes %q: %+v, from the string %+v", id, got, k)
		}
		// is(x) answers k.String() == x, for every id of the list as x.
		for _, other := range []string{id, engine, "", "k", "p.00112233445566778899AABBCCDDEEFF", "p.00112233445566778899aabbccddeeff",
			"kv-9b2e4c1a-1111-4222-8333-444455556666x00112233445566778899aabbccddeeff",
			"kv-9b2e4c1a-1111-4222-8333-444455556667.00112233445566778899aabbccddeeff",
			"kv-9b2e4c1a-1111-4222-8333-444455556666.00112233445566778899aabbccddeefe"} {
			if got, want := k.is(other), k.String() == other; got != want {
				t.Errorf("keyID(%q).is(%q) = %v, want %v", id, other, got, want)
			}
		}
	}
	// The engine's ids share their mount's prefix.
	a, b := ms.keyID(engine), ms.keyID("kv-9b2e4c1a-1111-4222-8333-444455556666.0123456789abcdef0123456789abcdef")
	if !a.hex || !b.hex || unsafe.StringData(a.pre) != unsafe.StringData(b.pre) {
		t.Fatalf("prefixes not shared: %+v %+v", a, b)
	}
}

// utc is t as the view gives times back: UTC, and the zero time as is.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// The compact form encodes a version exactly as a Version was encoded (snapshots, and so
// digests and older checkpoints, are unchanged), and gives the same Version back.
func TestNumberedMatchesVersion(t *testing.T) {
	ms := newMountState()
	est := time.FixedZone("EST", -5*3600)
	for _, v := range []Version{
		{Created: time.Date(2026, 12, 5, 12, 0, 0, 123456789, time.UTC), KeyID: "kv-m.00112233445566778899aabbccddeeff", Sealed: []byte("sealed")},
		{Created: time.Date(2026, 12, 5, 7, 0, 0, 1, est), Deletion: time.Date(2027, 1, 1, 0, 0, 0, 0, est), KeyID: "odd id", Sealed: []byte{0}},
		{Created: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Deletion: time.Date(3026, 1, 1, 0, 0, 0, 999999999, time.UTC), KeyID: "kv-m.ffeeddccbbaa99887766554433221100"},
		{Created: time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), Destroyed: true},
		{Created: time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), Deletion: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{},
	} {
		x := ms.newNumbered(7, v)
		want := v
		want.Created, want.Deletion = utc(v.Created), utc(v.Deletion)
		got := x.version()
		if !got.Created.Equal(want.Created) || got.Created.Location() != want.Created.Location() && !want.Created.IsZero() ||
			!got.Deletion.Equal(want.Deletion) || got.Deletion.IsZero() != want.Deletion.IsZero() ||
			got.Destroyed != want.Destroyed || got.KeyID != want.KeyID || !bytes.Equal(got.Sealed, want.Sealed) {
			t.Errorf("version() = %+v, want %+v", got, want)
		}
		enc := x.appendTo(nil)
		if old := appendVersion(nil, &want); !bytes.Equal(enc, old) {
			t.Errorf("%+v encodes as %x, a Version as %x", v, enc, old)
		}
		if x.encodedLen() != len(enc) {
			t.Errorf("encodedLen = %d, encoded %d bytes", x.encodedLen(), len(enc))
		}
	}
	// The zero value holds zero times, as zero time.Time fields did.
	var zero numbered
	if !zero.created().IsZero() || !zero.deletion().IsZero() || !(&secret{}).created().IsZero() {
		t.Error("the zero value's times are not zero")
	}
	if size := unsafe.Sizeof(secret{}); size > 96 {
		t.Errorf("secret is %d bytes: the view keeps one per path (96 is the size class it was made for)", size)
	}
	if size := unsafe.Sizeof(numbered{}); size > 96 {
		t.Errorf("numbered is %d bytes: the view keeps one per version (96 is the size class it was made for)", size)
	}
}
