package main

// The lesson's Part 1 ("a PostgreSQL password sat in a public repository for eleven days"), from
// leak to lockdown: a static role's password, issued by Ledger and read by an application, is
// committed to a git repository; `ledger scan` finds it in the history; `ledger incident
// --contain -yes` names the reader and rotates it; the old password no longer logs in to the
// test's real PostgreSQL.

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/engines/hosttools"
)

// gitRun runs git in dir with a fixed identity and no user or system configuration.
func gitRun(t *testing.T, git, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(git, append([]string{"-C", dir, "-c", "user.name=dev", "-c", "user.email=dev@example.com", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestLeakToLockdown(t *testing.T) {
	git := hosttools.Need(t, "git", "git")
	l := dbtest.LessonPostgres(t)
	c := dbLessonCLI(t, l)
	ctx := context.Background()

	// The application's account, managed by a static role: Ledger sets its password at once.
	user := dbtest.Name("app_user_")
	dbtest.PostgresRole(t, l.Super, user, "typed-by-a-human-1", "")
	dbAllowRoles(c, "app")
	c.ok("write", "database/static-roles/app", "db_name=production-db", "username="+user, "rotation_period=24h")
	dir := t.TempDir()
	c.ok("policy", "write", "app", writeFile(t, dir, "app.hcl", `path "database/static-creds/app" { capabilities = ["read"] }`, 0o600))
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(c.ok("token", "create", "-policy=app", "-format=json")), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Auth.ClientToken == "" || tok.Auth.Accessor == "" {
		t.Fatal("token create -format=json: no client_token or accessor")
	}

	// The application reads its password (an audited read) and uses it.
	app := c.runEnv(c.env("VAULT_TOKEN", tok.Auth.ClientToken), "", "read", "-field=password", "database/static-creds/app")
	if app.code != 0 {
		t.Fatalf("the app's read: %s", app)
	}
	leaked := strings.TrimSpace(app.stdout)
	if _, err := dbtest.PostgresLogin(ctx, l.Super, user, leaked, "SELECT 1"); err != nil {
		t.Fatalf("the issued password does not log in: %v", err)
	}

	// A developer commits it, then "removes" it: only the history has it now. The repository
	// also holds a binary file with the password inside, a file of invalid UTF-8 and a huge one.
	repo := filepath.Join(t.TempDir(), "myapp")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	gitRun(t, git, repo, "init", "-q")
	writeFile(t, repo, "config.env", "DB_HOST=db.example.com\nDB_USER="+user+"\nDB_PASSWORD=\""+leaked+"\"\n", 0o644)
	writeFile(t, repo, "blob.bin", "\x00\x01\x02"+leaked+"\x00", 0o644)
	writeFile(t, repo, "latin1.txt", "caf\xe9 \xff\xfe password=not-stored-anywhere-1\n", 0o644)
	writeFile(t, repo, "huge.log", strings.Repeat("lorem ipsum dolor sit amet 0123456789\n", 60000), 0o644)
	gitRun(t, git, repo, "add", ".")
	gitRun(t, git, repo, "commit", "-q", "-m", "add config")
	commit := gitRun(t, git, repo, "rev-parse", "HEAD")
	writeFile(t, repo, "config.env", "DB_HOST=db.example.com\nDB_PASSWORD=${DB_PASSWORD}\n", 0o644)
	gitRun(t, git, repo, "commit", "-q", "-am", "read the password from the environment")

	scan := c.run("scan", "-max-file-size=1048576", repo)
	if scan.code != 1 {
		t.Fatalf("scan of the leaky repository: want exit 1\n%s", scan)
	}
	for _, want := range []string{filepath.Join(repo, "config.env") + ":3", commit[:12], "database/static-roles/app", "rotated"} {
		if want == "rotated" {
			continue // still live at this point; checked below
		}
		if !strings.Contains(scan.stdout, want) {
			t.Errorf("scan output lacks %q:\n%s", want, scan.stdout)
		}
	}
	if strings.Contains(scan.stdout+scan.stderr, leaked) {
		t.Fatal("scan printed the secret value")
	}
	if !strings.Contains(scan.stderr, "skipped 1 binary file") || !strings.Contains(scan.stderr, "1 huge file") {
		t.Errorf("scan did not report the binary and huge files: %s", scan.stderr)
	}
	var js scanSummary
	scanJSON := c.run("scan", "-format=json", "-max-file-size=1048576", repo)
	if err := json.Unmarshal([]byte(scanJSON.stdout), &js); err != nil || scanJSON.code != 1 {
		t.Fatalf("scan -format=json: %v\n%s", err, scanJSON)
	}
	if len(js.Findings) != 1 || js.Findings[0].Commit != commit || js.Findings[0].Line != 3 || !js.Findings[0].Live ||
		js.Findings[0].SecretPath != "database/static-roles/app" || js.Findings[0].Field != "password" {
		t.Fatalf("findings %+v", js.Findings)
	}
	checkSARIF(t, c.run("scan", "-format=sarif", repo), commit)

	// A clean tree is exit 0; the working tree alone (no history) is clean too.
	if r := c.run("scan", "-history=false", repo); r.code != 0 || !strings.Contains(r.stdout, "No stored secrets found") {
		t.Fatalf("working tree without history: want exit 0\n%s", r)
	}

	// The incident: who read it, and the lockdown.
	// "--": a generated password may begin with '-' (the default policy's alphabet has it).
	inc := c.run("incident", "-format=json", "-contain", "-yes", "--", leaked)
	if inc.code != 0 {
		t.Fatalf("incident -contain: %s", inc)
	}
	var rep incidentReport
	if err := json.Unmarshal([]byte(inc.stdout), &rep); err != nil {
		t.Fatalf("incident report: %v\n%s", err, inc.stdout)
	}
	if strings.Contains(inc.stdout+inc.stderr, leaked) {
		t.Fatal("incident printed the secret value")
	}
	reader := false
	for _, e := range rep.Events {
		if e.Kind == "read" && e.Accessor == tok.Auth.Accessor && e.Path == "database/static-creds/app" && e.RemoteAddress != "" &&
			strings.Contains(strings.Join(e.TokenPolicies, ","), "app") {
			reader = true
		}
	}
	if !reader {
		t.Fatalf("the app's read is not in the report: %+v", rep.Events)
	}
	if len(rep.Targets) != 1 || rep.Targets[0]["secret_path"] != "database/static-roles/app" {
		t.Fatalf("targets %+v", rep.Targets)
	}
	steps := map[string]string{}
	for _, s := range rep.Timeline {
		steps[s.Action] = s.Result
	}
	if steps["rotate-role"] != "done" || steps["revoke-token"] != "done" {
		t.Fatalf("timeline %+v", rep.Timeline)
	}

	// The old password no longer logs in; the new one does; the reader's token is gone.
	if _, err := dbtest.PostgresLogin(ctx, l.Super, user, leaked, "SELECT 1"); err == nil {
		t.Fatal("the leaked password still logs in to PostgreSQL after -contain")
	} else if !strings.Contains(err.Error(), "password authentication failed") {
		t.Fatalf("old password: want an authentication failure, got %v", err)
	}
	fresh := strings.TrimSpace(c.ok("read", "-field=password", "database/static-creds/app"))
	if _, err := dbtest.PostgresLogin(ctx, l.Super, user, fresh, "SELECT 1"); err != nil {
		t.Fatalf("the rotated password does not log in: %v", err)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", tok.Auth.ClientToken), "", "token", "lookup"); r.code == 0 {
		t.Fatal("the reader's token survived -contain")
	}
	// The scan now reports the committed value as rotated, and still exits 1 (it is in git).
	if r := c.run("scan", "-format=json", repo); r.code != 1 || !strings.Contains(r.stdout, `"state": "rotated"`) {
		t.Fatalf("scan after containment:\n%s", r)
	}

	// Bad inputs.
	if r := c.run("incident", "short"); r.code != 2 || !strings.Contains(r.stderr, "shorter than 8 bytes") {
		t.Errorf("a too-short value: %s", r)
	}
	if r := c.run("incident", "never-stored-anywhere-42"); r.code != 0 || !strings.Contains(r.stdout, "matches no secret") {
		t.Errorf("an unknown value: %s", r)
	}
	if r := c.runEnv(c.env(), `{"candidates":["abc"]}`, "write", "sys/ledger/fingerprints/match", "-"); r.code != 2 || !strings.Contains(r.stderr, "probe") {
		t.Errorf("a too-short candidate: %s", r)
	}
	// Without sudo: 403, for the scan and the report alike.
	c.ok("policy", "write", "nosudo", writeFile(t, dir, "nosudo.hcl", `path "sys/ledger/*" { capabilities = ["update", "read"] }`, 0o600))
	nosudo := strings.TrimSpace(c.ok("token", "create", "-policy=nosudo", "-field=token"))
	if r := c.runEnv(c.env("VAULT_TOKEN", nosudo), "", "scan", repo); r.code != 2 || !strings.Contains(r.stderr, "403") || !strings.Contains(r.stderr, "sudo") {
		t.Errorf("scan without sudo: %s", r)
	}
	if r := c.runEnv(c.env("VAULT_TOKEN", nosudo), "", "incident", "--", fresh); r.code != 2 || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("incident without sudo: %s", r)
	}
	// A flood of match requests is refused with 429, and the refusals are audited.
	c.ok("policy", "write", "scanner", writeFile(t, dir, "scanner.hcl", `path "sys/ledger/fingerprints/match" { capabilities = ["update", "sudo"] }`, 0o600))
	scanner := strings.TrimSpace(c.ok("token", "create", "-policy=scanner", "-field=token"))
	limited := false
	for i := 0; i < 300 && !limited; i++ {
		r := c.runEnv(c.env("VAULT_TOKEN", scanner), `{"candidates":["flood-candidate-1"]}`, "write", "sys/ledger/fingerprints/match", "-")
		limited = r.code == 2 && strings.Contains(r.stderr, "429")
	}
	if !limited {
		t.Fatal("300 match requests in a row were never rate-limited")
	}
	audited := c.ok("read", "-format=json", "sys/ledger/audit/query", "path=sys/ledger/fingerprints/match", "errors_only=true")
	if !strings.Contains(audited, "limited to") {
		t.Errorf("the rate-limited request is not in the audit trail: %.2000s", audited)
	}
}

// checkSARIF checks the SARIF 2.1.0 shape code scanning tools require.
func checkSARIF(t *testing.T, r result, commit string) {
	t.Helper()
	if r.code != 1 {
		t.Fatalf("scan -format=sarif: %s", r)
	}
	var doc struct {
		Version string `json:"version"`
		Schema  string `json:"$schema"`
		Runs    []struct {
			Tool struct {
				Driver struct {
					Name  string `json:"name"`
					Rules []struct {
						ID string `json:"id"`
					} `json:"rules"`
				} `json:"driver"`
			} `json:"tool"`
			Results []struct {
				RuleID  string `json:"ruleId"`
				Message struct {
					Text string `json:"text"`
				} `json:"message"`
				Locations []struct {
					PhysicalLocation struct {
						ArtifactLocation struct {
							URI string `json:"uri"`
						} `json:"artifactLocation"`
						Region struct {
							StartLine int `json:"startLine"`
						} `json:"region"`
					} `json:"physicalLocation"`
				} `json:"locations"`
			} `json:"results"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2.1.0" || !strings.Contains(doc.Schema, "sarif") || len(doc.Runs) != 1 {
		t.Fatalf("sarif header: %+v", doc)
	}
	run := doc.Runs[0]
	if run.Tool.Driver.Name == "" || len(run.Tool.Driver.Rules) != 1 || len(run.Results) != 1 {
		t.Fatalf("sarif run: %+v", run)
	}
	res := run.Results[0]
	if res.RuleID != run.Tool.Driver.Rules[0].ID || !strings.Contains(res.Message.Text, commit) || len(res.Locations) != 1 ||
		!strings.HasSuffix(res.Locations[0].PhysicalLocation.ArtifactLocation.URI, "config.env") || res.Locations[0].PhysicalLocation.Region.StartLine != 3 {
		t.Fatalf("sarif result: %+v", res)
	}
}
