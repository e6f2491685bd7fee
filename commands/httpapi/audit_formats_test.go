package httpapi_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestAuditSIEMFormats: file devices in ocsf, ecs and cef write one line per record — a login
// as OCSF Authentication, a KV read as API Activity — beside a json device that is unchanged;
// a bad format name is a 400 naming the choices.
func TestAuditSIEMFormats(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	dir := t.TempDir()
	for _, f := range []string{"json", "ocsf", "ecs", "cef"} {
		if err := root.Sys().EnableAuditWithOptions(f, &vault.EnableAuditOptions{Type: "file", Options: map[string]string{
			"file_path": filepath.Join(dir, f+".log"), "format": f}}); err != nil {
			t.Fatalf("enable %s: %v", f, err)
		}
	}
	err := root.Sys().EnableAuditWithOptions("bad", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": filepath.Join(dir, "x"), "format": "jsonx"}})
	respErr(t, err, 400, "use json, ocsf, ecs or cef")
	if err := root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw-alice-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client(t, "").Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw-alice-1"}); err != nil {
		t.Fatal(err)
	}
	kvPut(t, root, "fmt/one")
	if _, err := root.KVv2("secret").Get(t.Context(), "fmt/one"); err != nil {
		t.Fatal(err)
	}
	read := func(f string) []string {
		b, _ := os.ReadFile(filepath.Join(dir, f+".log"))
		var out []string
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			out = append(out, sc.Text())
		}
		return out
	}
	eventually(t, 20*time.Second, "every device has the KV read", func() bool {
		for _, f := range []string{"json", "ocsf", "ecs", "cef"} {
			found := false
			for _, l := range read(f) {
				if strings.Contains(l, "secret/data/fmt/one") && strings.Contains(l, "read") {
					found = true
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	count := func(lines []string) int {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "secret/data/fmt/one") {
				n++
			}
		}
		return n
	}
	ocsf := read("ocsf")
	if j, o := count(read("json")), count(ocsf); j != 4 || o != 2 {
		t.Fatalf("lines naming the secret: json %d, ocsf %d; want a request and a response entry per record in json (4), one line per record in SIEM formats (2)", j, o)
	}
	var sawLogin, sawRead bool
	for _, l := range ocsf {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("ocsf line is not JSON: %s", l)
		}
		msg, _ := ev["message"].(string)
		switch {
		case strings.HasPrefix(msg, "login auth/userpass/login/alice"):
			sawLogin = ev["class_uid"] == 3002.0 && ev["status_id"] == 1.0 && strings.Contains(ev["user"].(map[string]any)["name"].(string), "alice")
		case msg == "read secret/data/fmt/one":
			sawRead = ev["class_uid"] == 6003.0 && ev["activity_id"] == 2.0 && ev["type_uid"] == 600302.0
		}
		if strings.Contains(l, "pw-alice-1") {
			t.Fatalf("password in an OCSF line: %s", l)
		}
	}
	if !sawLogin || !sawRead {
		t.Fatalf("login %v read %v in %v", sawLogin, sawRead, ocsf)
	}
	for _, l := range read("cef") {
		if !strings.HasPrefix(l, "CEF:0|Ledger|Ledger|") {
			t.Fatalf("cef line %q", l)
		}
	}
	for _, l := range read("ecs") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev["@timestamp"] == nil {
			t.Fatalf("ecs line %q", l)
		}
	}
}
