package httpapi_test

import (
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestActivityCounters: sys/internal/counters/activity counts distinct clients per mount and
// month from the log, in Vault's shape; a client is counted once however many tokens it gets.
func TestActivityCounters(t *testing.T) {
	s := startServer(t)
	c := s.Client(t, s.RootToken)
	if err := c.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	for u, pol := range map[string]string{"alice": "a", "bob": "b"} {
		if _, err := c.Logical().Write("auth/userpass/users/"+u, map[string]any{"password": "pw", "token_policies": pol}); err != nil {
			t.Fatal(err)
		}
	}
	for _, u := range []string{"alice", "bob", "alice", "alice"} {
		if _, err := s.Client(t, "").Logical().Write("auth/userpass/login/"+u, map[string]any{"password": "pw"}); err != nil {
			t.Fatal(err)
		}
	}
	newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})

	sec, err := c.Logical().Read("sys/internal/counters/activity")
	if err != nil {
		t.Fatal(err)
	}
	d := sec.Data
	// Clients: alice's and bob's entities (however often they log in), the root token and the
	// "default" tokens (one non-entity client: same policies).
	total := d["total"].(map[string]any)
	if num(t, total["clients"]) != 4 || num(t, total["non_entity_clients"]) != 2 || num(t, total["entity_clients"]) != 2 ||
		num(t, total["non_entity_tokens"]) != 2 || num(t, total["distinct_entities"]) != 2 || num(t, total["secret_syncs"]) != 0 {
		t.Fatalf("total = %v", total)
	}
	for _, k := range []string{"start_time", "end_time"} {
		if _, err := time.Parse(time.RFC3339, d[k].(string)); err != nil {
			t.Fatalf("%s = %v", k, d[k])
		}
	}
	ns := d["by_namespace"].([]any)[0].(map[string]any)
	if ns["namespace_id"] != "root" || ns["namespace_path"] != "" {
		t.Fatalf("namespace = %v", ns)
	}
	mounts := map[string]int64{}
	for _, m := range ns["mounts"].([]any) {
		mm := m.(map[string]any)
		mounts[mm["mount_path"].(string)] = num(t, mm["counts"].(map[string]any)["clients"])
	}
	if len(mounts) != 2 || mounts["auth/userpass/"] != 2 || mounts["auth/token/"] != 2 {
		t.Fatalf("mounts = %v", mounts)
	}
	months := d["months"].([]any)
	if len(months) != 12 {
		t.Fatalf("%d months, want the default 12", len(months))
	}
	last := months[len(months)-1].(map[string]any)
	if ts, _ := time.Parse(time.RFC3339, last["timestamp"].(string)); ts.Month() != time.Now().UTC().Month() {
		t.Fatalf("last month = %v", last["timestamp"])
	}
	if num(t, last["counts"].(map[string]any)["clients"]) != 4 || num(t, last["new_clients"].(map[string]any)["counts"].(map[string]any)["clients"]) != 4 {
		t.Fatalf("this month = %v", last)
	}
	if first := months[0].(map[string]any); first["counts"] != nil || first["namespaces"] != nil {
		t.Fatalf("a month without activity = %v, want null counts", first)
	}

	// A range without activity is Vault's 204; bad ranges are 400s.
	future := time.Now().UTC().AddDate(1, 0, 0).Format(time.RFC3339)
	if sec, err := c.Logical().ReadWithData("sys/internal/counters/activity", map[string][]string{"start_time": {future}, "end_time": {future}}); err != nil || sec != nil {
		t.Fatalf("empty range = %v %v, want 204", sec, err)
	}
	for _, tc := range []struct {
		q    map[string][]string
		want string
	}{
		{map[string][]string{"start_time": {"yesterday"}}, "not an RFC 3339 time"},
		{map[string][]string{"start_time": {future}}, "start_time is later than end_time"},
	} {
		_, err := c.Logical().ReadWithData("sys/internal/counters/activity", tc.q)
		respErr(t, err, 400, tc.want)
	}
	tok := newToken(t, c, &vault.TokenCreateRequest{Policies: []string{"default"}})
	_, err = s.Client(t, tok.ClientToken).Logical().Read("sys/internal/counters/activity")
	denied(t, err)

	// The counts are a view of the log: replay rebuilds them.
	v, err := c.Logical().Write("sys/ledger/replay/verify", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range v.Data["views"].([]any) {
		if m := e.(map[string]any); m["name"] == "activity" {
			found = m["match"] == true
		}
	}
	if v.Data["ok"] != true || !found {
		t.Fatalf("replay verify does not match the activity view: %v", v.Data)
	}
}
