package acl

import (
	"slices"
	"strings"
	"testing"
)

// subscribe_event_types: parsed, kept by Format, merged as a union of the blocks that grant
// subscribe; a block without the list grants every type, a block without subscribe adds none.
func TestSubscribeEventTypes(t *testing.T) {
	a, err := Parse("a", `
path "secret/data/*" {
  capabilities = ["list", "subscribe"]
  subscribe_event_types = ["kv-v2/data-write"]
}
path "secret/data/x" { capabilities = ["subscribe"] }
path "other/*" { capabilities = ["read"] }`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse("b", `
path "secret/data/*" {
  capabilities = ["subscribe"]
  subscribe_event_types = ["kv-v1/*"]
}
path "other/*" {
  capabilities = ["read"]
  subscribe_event_types = ["*"]
}`)
	if err != nil {
		t.Fatal(err)
	}
	acl := New(a, b)
	types, ok := acl.SubscribeEventTypes("secret/data/y")
	if !ok || !slices.Equal(types, []string{"kv-v2/data-write", "kv-v1/*"}) {
		t.Fatalf("merged types %v %v", types, ok)
	}
	if types, ok := acl.SubscribeEventTypes("secret/data/x"); !ok || types != nil {
		t.Fatalf("block without a list: %v %v, want every type", types, ok)
	}
	if _, ok := acl.SubscribeEventTypes("other/z"); ok {
		t.Fatal("a block without subscribe grants subscribe")
	}
	if types, ok := New(&Policy{Name: "root"}).SubscribeEventTypes("anything"); !ok || types != nil {
		t.Fatal("root")
	}
	out, err := Format(`path "s/*" {
capabilities = ["subscribe"]
subscribe_event_types = ["kv*"]
}`)
	if err != nil || !strings.Contains(out, "subscribe_event_types") || !strings.Contains(out, `["kv*"]`) {
		t.Fatalf("format: %q %v", out, err)
	}
	if _, err := Parse("bad", `path "s/*" { subscribe_event_types = "kv*" }`); err == nil {
		t.Fatal("a string instead of a list is accepted")
	}
}
