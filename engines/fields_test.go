package engines

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want time.Duration
		bad  bool
	}{
		{"seconds number", json.Number("30"), 30 * time.Second, false},
		{"float", float64(60), time.Minute, false},
		{"string seconds", "45", 45 * time.Second, false},
		{"go duration", "1h30m", 90 * time.Minute, false},
		{"days", "7d", 7 * 24 * time.Hour, false},
		{"negative", "-5s", 0, true},
		{"garbage", "ten", 0, true},
		{"wrong type", true, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Duration(map[string]any{"ttl": tc.in}, "ttl", 0)
			if tc.bad {
				if !errors.Is(err, ErrBadRequest) {
					t.Fatalf("got %v, want a bad request", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestIntBoolStrings(t *testing.T) {
	d := map[string]any{"n": json.Number("10"), "s": "ten", "b": "true", "l": "a, b,,c", "arr": []any{"x", 1}}
	if n, err := Int(d, "n", 0); n != 10 || err != nil {
		t.Fatalf("Int: %v %v", n, err)
	}
	if _, err := Int(d, "s", 0); !errors.Is(err, ErrBadRequest) || err.Error() != `field "s": expected an integer` {
		t.Fatalf("Int of a word: %v", err)
	}
	if b, err := Bool(d, "b", false); !b || err != nil {
		t.Fatalf("Bool: %v %v", b, err)
	}
	if l, err := Strings(d, "l"); len(l) != 3 || l[2] != "c" || err != nil {
		t.Fatalf("Strings: %v %v", l, err)
	}
	if _, err := Strings(d, "arr"); !errors.Is(err, ErrBadRequest) {
		t.Fatalf("Strings with a number inside: %v", err)
	}
	if got := Unknown(d, "n", "s"); len(got) != 3 {
		t.Fatalf("Unknown: %v", got)
	}
}

func TestNonNegativeDuration(t *testing.T) {
	for _, in := range []any{"-1", "-5s", json.Number("-3"), float64(-1), -1} {
		_, err := NonNegativeDuration(map[string]any{"ttl": in}, "ttl")
		if err == nil || err.Error() != "'ttl' cannot be negative" || !errors.Is(err, ErrBadRequest) {
			t.Fatalf("%#v: got %v, want tokenutil's message", in, err)
		}
	}
	if d, err := NonNegativeDuration(map[string]any{"ttl": "1h"}, "ttl"); err != nil || d != time.Hour {
		t.Fatalf("got %v, %v", d, err)
	}
	if d, err := NonNegativeDuration(map[string]any{}, "ttl"); err != nil || d != 0 {
		t.Fatalf("absent: got %v, %v", d, err)
	}
}

func TestCIDRs(t *testing.T) {
	tests := []struct {
		name  string
		host  string
		cidrs []string
		in    bool
	}{
		{"inside a block", "10.1.2.3", []string{"192.0.2.0/24", "10.0.0.0/8"}, true},
		{"outside every block", "172.16.0.1", []string{"10.0.0.0/8"}, false},
		{"bare address", "192.0.2.5", []string{"192.0.2.5"}, true},
		{"mapped peer, IPv4 block", "::ffff:10.0.0.1", []string{"10.0.0.0/8"}, true},
		{"IPv4 peer, mapped block", "10.0.0.1", []string{"::ffff:10.0.0.0/104"}, true},
		{"not an address", "example.com", []string{"0.0.0.0/0"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := InCIDRs(tc.host, tc.cidrs); got != tc.in {
				t.Fatalf("InCIDRs(%q, %q) = %v", tc.host, tc.cidrs, got)
			}
		})
	}
	if err := CheckCIDRs("invalid", []string{"10.0.0.0/8", "192.0.2.5", "nope"}); err == nil || err.Error() != "invalid" {
		t.Fatalf("CheckCIDRs: got %v", err)
	}
	if err := CheckCIDRs("invalid", []string{"10.0.0.0/8", "2001:db8::1"}); err != nil {
		t.Fatalf("CheckCIDRs: got %v", err)
	}
	for _, tc := range []struct {
		super, sub []string
		want       bool
	}{
		{nil, []string{"10.0.0.0/8"}, true},
		{[]string{"10.0.0.0/8"}, []string{"10.1.0.0/16", "10.2.3.4"}, true},
		{[]string{"10.1.0.0/16"}, []string{"10.0.0.0/8"}, false},
		{[]string{"10.0.0.0/8"}, []string{"nope"}, false},
	} {
		if got := SubsetCIDRs(tc.super, tc.sub); got != tc.want {
			t.Fatalf("SubsetCIDRs(%q, %q) = %v", tc.super, tc.sub, got)
		}
	}
	for remote, want := range map[string]string{"192.0.2.1:5000": "192.0.2.1", "[2001:db8::1]:443": "2001:db8::1", " 192.0.2.1 ": "192.0.2.1"} {
		if got := HostOf(remote); got != want {
			t.Fatalf("HostOf(%q) = %q", remote, got)
		}
	}
}
