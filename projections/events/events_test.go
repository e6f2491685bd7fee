package events

import "testing"

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, typ string
		want         bool
	}{
		{"*", "kv-v2/data-write", true},
		{"kv*", "kv-v1/write", true},
		{"kv-v2/*", "kv-v2/metadata-delete", true},
		{"kv-v2/*", "kv-v1/write", false},
		{"kv-v2/data-write", "kv-v2/data-write", true},
		{"kv-v2/data-write", "kv-v2/data-writes", false},
		{"*/delete", "kv-v1/delete", true},
		{"*/delete", "kv-v2/data-delete", false},
		{"kv*delete", "kv-v2/metadata-delete", true},
		{"kv*d*e", "kv-v2/data-write", true},
	} {
		if got := Match(tc.pattern, tc.typ); got != tc.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tc.pattern, tc.typ, got, tc.want)
		}
	}
}

func TestParsePos(t *testing.T) {
	for _, tc := range []struct {
		in     string
		seq    uint64
		idx    uint32
		hasIdx bool
		bad    bool
	}{
		{in: "42", seq: 42},
		{in: "42.3", seq: 42, idx: 3, hasIdx: true},
		{in: "0", bad: true},
		{in: "-1", bad: true},
		{in: "42.", bad: true},
		{in: "x.1", bad: true},
		{in: "", bad: true},
	} {
		p, hasIdx, err := ParsePos(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && (p.Seq != tc.seq || p.Index != tc.idx || hasIdx != tc.hasIdx)) {
			t.Errorf("ParsePos(%q) = %v %v %v", tc.in, p, hasIdx, err)
		}
	}
}
