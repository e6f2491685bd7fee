package token

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// TestParamsJSON pins the JSON names of Params: the approle and userpass views have stored the
// token_* fields of roles and users under them since their first events, and those events
// must still decode.
func TestParamsJSON(t *testing.T) {
	const stored = `{"policies":["dev","ops"],"ttl":3600000000000,"max_ttl":7200000000000,` +
		`"explicit_max_ttl":10800000000000,"period":1800000000000,"num_uses":5,"no_default_policy":true,` +
		`"bound_cidrs":["10.0.0.0/8"],"type":"service"}`
	want := Params{
		Policies: []string{"dev", "ops"}, TTL: time.Hour, MaxTTL: 2 * time.Hour, ExplicitMaxTTL: 3 * time.Hour,
		Period: 30 * time.Minute, NumUses: 5, NoDefaultPolicy: true, BoundCIDRs: []string{"10.0.0.0/8"}, Type: "service",
	}
	var got Params
	if err := json.Unmarshal([]byte(stored), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != stored {
		t.Fatalf("encoded %s, want %s", b, stored)
	}
	if b, _ := json.Marshal(Params{}); string(b) != "{}" {
		t.Fatalf("zero params encode as %s, want {}", b)
	}
}
