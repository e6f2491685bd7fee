package mount

import "testing"

// Moved re-keys the entry; a move decided against a stale table (wrong UUID, taken target)
// changes nothing.
func TestMoved(t *testing.T) {
	v := New()
	for _, r := range sample() {
		if err := v.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	list := v.List()
	src := list[len(list)-1]
	if err := v.Apply(rec(100, Moved, MovedPayload{From: src.Path, To: src.Path + "x", UUID: "not-" + src.UUID})); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Get(src.Path); !ok {
		t.Fatal("a move with the wrong UUID moved the mount")
	}
	if err := v.Apply(rec(101, Moved, MovedPayload{From: src.Path, To: "moved/", UUID: src.UUID})); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Get(src.Path); ok {
		t.Fatal("the old path is still mounted")
	}
	if e, ok := v.Match("moved/a/b"); !ok || e.UUID != src.UUID || e.Path != "moved/" {
		t.Fatalf("match at the new path: %+v %v", e, ok)
	}
}
