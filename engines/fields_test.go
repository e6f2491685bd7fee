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
