package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestFingerprintMatchBadInput: every malformed match or incident request is a 400 that says
// what to do, names no candidate, and matches nothing.
func TestFingerprintMatchBadInput(t *testing.T) {
	c := newCLI(t)
	c.ok("kv", "put", "secret/app", "password=long-enough-secret-1")
	many := make([]string, 5001)
	for i := range many {
		many[i] = "candidate-value-x"
	}
	manyJSON, _ := json.Marshal(map[string]any{"candidates": many})
	for _, tc := range []struct{ body, want string }{
		{`{"other":1}`, "missing candidates"},
		{`{"candidates":[]}`, "missing candidates"},
		{`{"candidates":"not-a-list-but-long"}`, ""}, // one string is one candidate: accepted
		{`{"candidates":[12345678]}`, "expected a list of strings"},
		{`{"candidates":["` + strings.Repeat("a", 4097) + `"]}`, "longest value matched is 4096"},
		{`{"candidates":["long-enough-secret-1","tiny"]}`, "candidate 1: is 4 bytes"},
		{string(manyJSON), "at most 5000"},
	} {
		r := c.runEnv(c.env(), tc.body, "write", "-format=json", "sys/ledger/fingerprints/match", "-")
		if tc.want == "" {
			if r.code != 0 {
				t.Errorf("%.60s: %s", tc.body, r)
			}
			continue
		}
		if r.code != 2 || !strings.Contains(r.stderr, "400") || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%.60s: want 400 %q, got %s", tc.body, tc.want, r)
		}
		if strings.Contains(r.stderr, "long-enough-secret-1") || strings.Contains(r.stderr, "tiny") {
			t.Errorf("%.60s: the error repeats a candidate: %s", tc.body, r.stderr)
		}
	}
	r := c.runEnv(c.env(), `{"candidates":["long-enough-secret-1","not-stored-value"]}`, "write", "-format=json", "sys/ledger/fingerprints/match", "-")
	var out struct {
		Data struct {
			Matches []map[string]any `json:"matches"`
			Checked int              `json:"checked"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || r.code != 0 {
		t.Fatalf("match: %v %s", err, r)
	}
	if out.Data.Checked != 2 || len(out.Data.Matches) != 1 || out.Data.Matches[0]["candidate"] != float64(0) ||
		out.Data.Matches[0]["secret_path"] != "secret/data/app" || strings.Contains(r.stdout, "long-enough-secret-1") {
		t.Fatalf("match answer %s", r.stdout)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"since":"1h"}`, "missing value or path"},
		{`{"value":"long-enough-secret-1","path":"secret/data/app"}`, "not both"},
		{`{"path":"secret/data/app","version":-1}`, "version must be 1 or more"},
		{`{"path":"nowhere/at/all"}`, "no mount serves"},
		{`{"path":"sys/policies/acl/default"}`, ""},
	} {
		r := c.runEnv(c.env(), tc.body, "write", "sys/ledger/incident", "-")
		if tc.want == "" {
			continue
		}
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("incident %s: want %q, got %s", tc.body, tc.want, r)
		}
	}
	if r := c.run("read", "-format=json", "sys/ledger/fingerprints/status"); r.code != 0 || !strings.Contains(r.stdout, `"fingerprints"`) {
		t.Errorf("status: %s", r)
	}
}
