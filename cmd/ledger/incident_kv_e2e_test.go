package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestIncidentKV: the lesson's KV-stored password: the report in markdown, an interactive
// -contain (yes to the new version, no to revoking the reader), the report by -path for a
// live and for a destroyed version.
func TestIncidentKV(t *testing.T) {
	c := newCLI(t)
	const leaked = "s3cur3_p@ss-2024"
	c.ok("kv", "put", "secret/myapp/db", "host=db.example.com", "username=dbadmin", "password="+leaked)
	dir := t.TempDir()
	c.ok("policy", "write", "myapp", writeFile(t, dir, "myapp.hcl", `path "secret/data/myapp/*" { capabilities = ["read"] }`, 0o600))
	app := strings.TrimSpace(c.ok("token", "create", "-policy=myapp", "-field=token"))
	accessor := strings.TrimSpace(c.runEnv(c.env("VAULT_TOKEN", app), "", "token", "lookup", "-field=accessor").stdout)
	if r := c.runEnv(c.env("VAULT_TOKEN", app), "", "kv", "get", "-field=password", "secret/myapp/db"); r.code != 0 || strings.TrimSpace(r.stdout) != leaked {
		t.Fatalf("the app's read: %s", r)
	}
	c.runEnv(c.env("VAULT_TOKEN", app), "", "kv", "get", "secret/myapp/other") // touched since: a miss counts too

	md := c.ok("incident", "-format=markdown", leaked)
	for _, want := range []string{"# Incident report", "`secret/data/myapp/db`", "| password |", accessor, "`secret/data/myapp/other`"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, leaked) {
		t.Fatal("the report printed the value")
	}

	// Interactive: replace the value, keep the reader's token.
	r := c.runEnv(c.env(), "y\nn\n", "incident", "-contain", leaked)
	if r.code != 0 || !strings.Contains(r.stderr, "write-new-version secret/data/myapp/db? [y/N]") || !strings.Contains(r.stdout, "skipped") {
		t.Fatalf("incident -contain: %s", r)
	}
	var v2 struct {
		Data struct {
			Data     map[string]string `json:"data"`
			Metadata struct {
				Version int `json:"version"`
			} `json:"metadata"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(c.ok("kv", "get", "-format=json", "secret/myapp/db")), &v2); err != nil {
		t.Fatal(err)
	}
	if v2.Data.Metadata.Version != 2 || v2.Data.Data["username"] != "dbadmin" || v2.Data.Data["host"] != "db.example.com" ||
		v2.Data.Data["password"] == leaked || len(v2.Data.Data["password"]) != 32 {
		t.Fatalf("after -contain: %+v", v2.Data)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", app), "", "token", "lookup"); r.code != 0 {
		t.Fatalf("the declined revocation happened anyway: %s", r)
	}

	// By path: version 1 is found by its fields' audit HMACs while it can be opened, and by its
	// read path and window once destroyed.
	var rep incidentReport
	if err := json.Unmarshal([]byte(c.ok("incident", "-format=json", "-path=secret/data/myapp/db", "-version=1")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 1 || len(rep.Events) == 0 || rep.Events[len(rep.Events)-1].ByPath {
		t.Fatalf("by path, live: %+v", rep)
	}
	c.ok("kv", "destroy", "-versions=1", "secret/myapp/db")
	rep = incidentReport{}
	if err := json.Unmarshal([]byte(c.ok("incident", "-format=json", "-path=secret/myapp/db", "-version=1")), &rep); err != nil {
		t.Fatal(err)
	}
	byPath := false
	for _, e := range rep.Events {
		byPath = byPath || (e.ByPath && e.Accessor == accessor)
	}
	if len(rep.Targets) != 1 || rep.Targets[0]["state"] != "destroyed" || !byPath {
		t.Fatalf("by path, destroyed: %+v", rep)
	}
	// The destroyed value is still recognised.
	if !strings.Contains(c.ok("incident", leaked), "destroyed") {
		t.Fatal("a destroyed version's value is no longer recognised")
	}
	if r := c.run("incident", "-path=secret/data/nothing/here"); r.code != 0 || !strings.Contains(r.stdout, "no recorded value") {
		t.Fatalf("unknown path: %s", r)
	}
	if r := c.run("incident", "-since=yesterday", leaked); r.code != 2 || !strings.Contains(r.stderr, "RFC 3339") {
		t.Fatalf("bad -since: %s", r)
	}
}
