package audit

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ledger-secrets/ledger/ledger"
)

func testKeyring(t *testing.T) *ledger.Keyring {
	t.Helper()
	k, err := ledger.NewKeyring(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var hmacRE = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

func TestHMACIsVaultShapedAndKeyed(t *testing.T) {
	k1, k2 := testKeyring(t), testKeyring(t)
	h := HMAC(k1, "secret")
	if !hmacRE.MatchString(h) || h != HMAC(k1, "secret") || h == HMAC(k2, "secret") || h == HMAC(k1, "secret2") {
		t.Fatalf("HMAC = %q", h)
	}
	// Domain-separated from the token MACs the token view keys on.
	if strings.TrimPrefix(h, HMACPrefix) == k1.MAC("token", "secret") {
		t.Fatal("audit HMAC equals the token MAC")
	}
}

func TestHashData(t *testing.T) {
	k := testKeyring(t)
	data := map[string]any{
		"password": "p",
		"n":        json.Number("3"),
		"ok":       true,
		"list":     []string{"a", "b"},
		"nested":   map[string]any{"team": "payments", "deep": map[string]any{"team": "x", "v": "y"}},
		"when":     time.Unix(0, 0).UTC(),
		"none":     nil,
	}
	got, kept, err := HashData(k, data, map[string]bool{"team": true, "absent": true})
	if err != nil {
		t.Fatal(err)
	}
	h := func(s string) string { return HMAC(k, s) }
	nested := got["nested"].(map[string]any)
	switch {
	case got["password"] != h("p"):
		t.Errorf("password = %v", got["password"])
	case got["n"] != json.Number("3") || got["ok"] != true || got["none"] != nil:
		t.Errorf("non-strings changed: %v %v %v", got["n"], got["ok"], got["none"])
	case got["list"].([]any)[1] != h("b"):
		t.Errorf("list = %v", got["list"])
	case nested["team"] != "payments" || nested["deep"].(map[string]any)["team"] != "x" || nested["deep"].(map[string]any)["v"] != h("y"):
		t.Errorf("nested = %v", nested)
	case got["when"] != h("1970-01-01T00:00:00Z"):
		t.Errorf("time = %v", got["when"])
	}
	if len(kept) != 1 || kept[0] != "team" {
		t.Errorf("kept keys = %v", kept)
	}
	type point struct{ X, Label string }
	st, _, err := HashData(k, map[string]any{"p": point{"1", "a"}, "b": []byte("x"), "m": map[string]string{"a": "b"}}, nil)
	if err != nil || st["p"].(map[string]any)["Label"] != h("a") || st["b"] != h("eA==") || st["m"].(map[string]any)["a"] != h("b") {
		t.Errorf("struct/bytes/map[string]string: %v %v", st, err)
	}
	if _, _, err := HashData(k, map[string]any{"c": make(chan int)}, nil); err == nil {
		t.Error("unencodable data hashed")
	}
}

// A record keeps a key raw for the device that lists it; the others HMAC it on emission,
// exactly as if they had hashed it themselves.
func TestEntriesApplyEachDevicesFormat(t *testing.T) {
	k := testKeyring(t)
	keep := map[string]bool{"team": true}
	reqData := map[string]any{"data": map[string]any{"team": "payments", "pw": "s3cr3t"}}
	hashed, kept, _ := HashData(k, reqData, keep)
	rec := Record{
		Time:           time.Unix(100, 0),
		Auth:           &Auth{ClientToken: HMAC(k, "hvs.tok"), Accessor: "acc123", Policies: []string{"root"}},
		Request:        &Request{ID: "r1", Operation: "update", Path: "secret/data/x", ClientToken: HMAC(k, "hvs.tok"), ClientTokenAccessor: "acc123", Data: hashed},
		Response:       &Response{Auth: &Auth{ClientToken: HMAC(k, "hvs.child"), Accessor: "acc456"}, Data: map[string]any{"v": HMAC(k, "1")}},
		RawRequestKeys: kept,
	}
	pos := &Position{Stream: "LEDGER", Seq: 7, Index: 1}
	plain := rec.Entries(k, DefaultFormat, pos)
	clear := rec.Entries(k, Format{HMACAccessor: false, NonHMACRequestKeys: keep}, pos)
	if len(plain) != 2 || plain[0].Type != "request" || plain[1].Type != "response" || plain[0].Response != nil || plain[1].Response == nil {
		t.Fatalf("entries: %+v", plain)
	}
	team := func(e Entry) any { return e.Request.Data["data"].(map[string]any)["team"] }
	if team(plain[0]) != HMAC(k, "payments") || team(clear[0]) != "payments" {
		t.Fatalf("team: default %v, non-hmac device %v", team(plain[0]), team(clear[0]))
	}
	if plain[0].Auth.Accessor != HMAC(k, "acc123") || plain[1].Response.Auth.Accessor != HMAC(k, "acc456") || plain[0].Request.ClientTokenAccessor != HMAC(k, "acc123") {
		t.Fatal("hmac_accessor=true left an accessor in clear")
	}
	if clear[0].Auth.Accessor != "acc123" || clear[1].Response.Auth.Accessor != "acc456" {
		t.Fatal("hmac_accessor=false HMACed an accessor")
	}
	// Emitting does not change the record.
	if rec.Auth.Accessor != "acc123" || rec.Request.Data["data"].(map[string]any)["team"] != "payments" {
		t.Fatal("Entries mutated the record")
	}
	for _, es := range [][]Entry{plain, clear} {
		b, _ := json.Marshal(es)
		for _, leak := range []string{"hvs.tok", "hvs.child", "s3cr3t"} {
			if strings.Contains(string(b), leak) {
				t.Fatalf("entry holds %q: %s", leak, b)
			}
		}
		if es[0].Time != "1970-01-01T00:01:40Z" || es[0].Ledger.Seq != 7 {
			t.Fatalf("time %q position %+v", es[0].Time, es[0].Ledger)
		}
	}
	// Round trip through the event.
	ev, err := rec.Event()
	if err != nil || ev.Type != Recorded {
		t.Fatal(ev.Type, err)
	}
	back, err := Decode(ev.Payload)
	if err != nil || back.Request.ID != "r1" || back.RawRequestKeys[0] != "team" {
		t.Fatalf("decode: %+v %v", back, err)
	}
	if _, err := Decode([]byte(`{"time":"2020-01-01T00:00:00Z"}`)); err == nil {
		t.Fatal("a record without a request decoded")
	}
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		typ  string
		opts map[string]string
		err  string
	}{
		{"file", map[string]string{"file_path": "/x"}, ""},
		{"file", map[string]string{"path": "/x", "mode": "0640", "hmac_accessor": "false", "prefix": "p"}, ""},
		{"file", nil, "file_path is required"},
		{"file", map[string]string{"file_path": "/x", "mode": "999"}, "mode"},
		{"file", map[string]string{"file_path": "/x", "log_raw": "true"}, "log_raw"},
		{"file", map[string]string{"file_path": "/x", "log_raw": "false"}, ""},
		{"file", map[string]string{"file_path": "/x", "format": "jsonx"}, "format"},
		{"file", map[string]string{"file_path": "/x", "address": "y"}, "unknown option"},
		{"syslog", nil, ""},
		{"syslog", map[string]string{"facility": "LOCAL9"}, "facility"},
		{"syslog", map[string]string{"network": "udp"}, "needs an address"},
		{"socket", map[string]string{"address": "127.0.0.1:1"}, ""},
		{"socket", map[string]string{"address": "127.0.0.1:1", "socket_type": "udp", "write_timeout": "3s"}, ""},
		{"socket", map[string]string{}, "address is required"},
		{"socket", map[string]string{"address": "x", "write_timeout": "soon"}, "write_timeout"},
		{"http", map[string]string{"url": "https://siem/hec", "headers": `{"Authorization":"Splunk t"}`, "batch_size": "10"}, ""},
		{"http", map[string]string{"url": "ftp://siem"}, "url"},
		{"http", map[string]string{"url": "https://siem", "headers": `{"Bad Header":"x"}`}, "not a valid header name"},
		{"http", map[string]string{"url": "https://siem", "batch_size": "0"}, "batch_size"},
		{"http", map[string]string{"url": "https://siem", "http_format": "xml"}, "http_format"},
		{"kafka", nil, "unknown audit device type"},
	} {
		s, err := ParseSettings(tc.typ, tc.opts)
		if tc.err == "" {
			if err != nil {
				t.Errorf("%s %v: %v", tc.typ, tc.opts, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s %v: err %v, want %q (settings %+v)", tc.typ, tc.opts, err, tc.err, s)
		}
	}
	s, _ := ParseSettings("file", map[string]string{"file_path": "/x"})
	if !s.HMACAccessor || s.FileMode != 0o600 {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestRedactedHidesHeaderValues(t *testing.T) {
	d := Device{Options: map[string]string{"url": "https://x", "headers": `{"Authorization":"Splunk secret-token"}`}}
	r := d.Redacted()
	if strings.Contains(r["headers"], "secret-token") || !strings.Contains(r["headers"], "Authorization") || d.Options["headers"] == r["headers"] {
		t.Fatalf("redacted: %v", r)
	}
}
