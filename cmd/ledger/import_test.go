package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/importer"
)

// The tests in this file run `ledger operator import` between two real dev servers: one plays
// the source (it speaks Vault's API), the other is the Ledger imported into. Both are read
// with the official Vault client afterwards and must agree.

const secretMark = "s3cr3t-value-" // every value written to a source contains it; no output may

func vclient(t testing.TB, addr, token string) *api.Client {
	t.Helper()
	c, err := vaultClient(addr, token, "", false, 16)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func must(t testing.TB, _ any, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parallel runs f(i) for i in [0,n) on w goroutines and fails on the first error.
func parallel(t testing.TB, n, w int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

// fillKV writes n KV v2 paths under mount with 3 versions each: every 10th has version 1
// destroyed, every 7th version 2 deleted, every 5th custom metadata and max_versions, every
// 9th cas_required. Values contain secretMark.
func fillKV(t testing.TB, c *api.Client, mount string, n int) {
	t.Helper()
	parallel(t, n, 32, func(i int) error {
		p := fmt.Sprintf("%sapp%02d/svc%04d", mount, i%20, i)
		rel := strings.TrimPrefix(p, mount)
		for v := 1; v <= 3; v++ {
			if _, err := c.Logical().Write(mount+"data/"+rel, map[string]any{"data": map[string]any{
				"password": fmt.Sprintf("%s%d-%d", secretMark, i, v), "port": 5432 + v, "nested": map[string]any{"k": fmt.Sprintf("%sn%d", secretMark, i)}}}); err != nil {
				return err
			}
		}
		if i%10 == 0 {
			if _, err := c.Logical().Write(mount+"destroy/"+rel, map[string]any{"versions": []int{1}}); err != nil {
				return err
			}
		}
		if i%7 == 0 {
			if _, err := c.Logical().Write(mount+"delete/"+rel, map[string]any{"versions": []int{2}}); err != nil {
				return err
			}
		}
		meta := map[string]any{}
		if i%5 == 0 {
			meta["custom_metadata"] = map[string]any{"owner": fmt.Sprintf("team-%d", i%3)}
			meta["max_versions"] = 7
			meta["delete_version_after"] = "720h"
		}
		if i%9 == 0 {
			meta["cas_required"] = true
		}
		if len(meta) > 0 {
			if _, err := c.Logical().Write(mount+"metadata/"+rel, meta); err != nil {
				return err
			}
		}
		return nil
	})
}

// fillSource makes a source with mounts, policies, KV v1 and v2, transit keys, AppRole and
// userpass.
func fillSource(t *testing.T, c *api.Client, kvPaths int) {
	t.Helper()
	sys := c.Sys()
	must(t, nil, sys.Mount("apps", &api.MountInput{Type: "kv", Description: "application secrets", Options: map[string]string{"version": "2"},
		Config: api.MountConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "24h", ListingVisibility: "unauth",
			AuditNonHMACRequestKeys: []string{"username"}, AuditNonHMACResponseKeys: []string{"lease_id"}}}))
	must(t, nil, sys.Mount("legacy", &api.MountInput{Type: "kv", Description: "kv v1", Options: map[string]string{"version": "1"}}))
	must(t, nil, sys.Mount("transit", &api.MountInput{Type: "transit"}))
	must(t, nil, sys.EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle", Description: "machines"}))
	must(t, nil, sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}))
	for i := range 3 {
		must(t, nil, sys.PutPolicy(fmt.Sprintf("team-%d", i), fmt.Sprintf("# team %d\npath \"apps/data/app%02d/*\" {\n  capabilities = [\"read\", \"list\"]\n}\n", i, i)))
	}
	_, err := c.Logical().Write("sys/policies/password/strong", map[string]any{"policy": "length = 24\nrule \"charset\" {\n  charset = \"abcdefghijklmnopqrstuvwxyz0123456789\"\n}\n"})
	must(t, nil, err)
	fillKV(t, c, "secret/", kvPaths)
	fillKV(t, c, "apps/", 20)
	for i := range 5 {
		_, err := c.Logical().Write(fmt.Sprintf("legacy/v1/item%d", i), map[string]any{"value": fmt.Sprintf("%sv1-%d", secretMark, i), "n": i})
		must(t, nil, err)
	}
	_, err = c.Logical().Write("transit/keys/exp", map[string]any{"exportable": true, "allow_plaintext_backup": true})
	must(t, nil, err)
	for range 2 {
		_, err = c.Logical().Write("transit/keys/exp/rotate", nil)
		must(t, nil, err)
	}
	_, err = c.Logical().Write("transit/keys/exp/config", map[string]any{"min_decryption_version": 2})
	must(t, nil, err)
	_, err = c.Logical().Write("transit/keys/noexp", map[string]any{})
	must(t, nil, err)
	_, err = c.Logical().Write("auth/approle/role/web", map[string]any{"token_policies": []string{"team-0"}, "token_ttl": "1h", "secret_id_num_uses": 3})
	must(t, nil, err)
	_, err = c.Logical().Write("auth/approle/role/web/secret-id", map[string]any{})
	must(t, nil, err)
	_, err = c.Logical().Write("auth/userpass/users/alice", map[string]any{"password": secretMark + "alice", "token_policies": []string{"team-1"}})
	must(t, nil, err)
}

// runImport runs the CLI in-process and returns its report.
func runImport(t *testing.T, dstAddr, dstToken string, args ...string) (*importer.Report, result) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := map[string]string{"VAULT_ADDR": dstAddr, "VAULT_TOKEN": dstToken, "HOME": t.TempDir()}
	code := run(append([]string{"operator", "import", "-format=json"}, args...), env, strings.NewReader(""), &out, &errOut)
	r := result{stdout: out.String(), stderr: errOut.String(), code: code}
	var rep importer.Report
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
			t.Fatalf("report is not JSON: %v\n%s", err, r)
		}
	}
	return &rep, r
}

// noSecrets fails if any output holds a value written to the source.
func noSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, secretMark) {
			t.Fatalf("a secret value was printed:\n%s", o)
		}
	}
}

// sameKV compares every KV v2 path of a mount on both servers: metadata (versions, times,
// states, settings) and every readable version's value.
func sameKV(t *testing.T, src, dst *api.Client, mount string) int {
	t.Helper()
	var paths []string
	var walk func(dir string)
	walk = func(dir string) {
		s, err := src.Logical().List(mount + "metadata/" + dir)
		must(t, nil, err)
		if s == nil {
			return
		}
		for _, k := range s.Data["keys"].([]any) {
			k := k.(string)
			if strings.HasSuffix(k, "/") {
				walk(dir + k)
			} else {
				paths = append(paths, dir+k)
			}
		}
	}
	walk("")
	parallel(t, len(paths), 32, func(i int) error {
		rel := paths[i]
		a, err := src.Logical().Read(mount + "metadata/" + rel)
		if err != nil {
			return err
		}
		b, err := dst.Logical().Read(mount + "metadata/" + rel)
		if err != nil || b == nil {
			return fmt.Errorf("%s%s: metadata in Ledger: %v", mount, rel, err)
		}
		for _, k := range []string{"current_version", "oldest_version", "max_versions", "cas_required", "delete_version_after", "custom_metadata", "versions", "created_time"} {
			if !equalJSONish(a.Data[k], b.Data[k]) {
				return fmt.Errorf("%s%s: %s differs: source %v, ledger %v", mount, rel, k, a.Data[k], b.Data[k])
			}
		}
		for v := range a.Data["versions"].(map[string]any) {
			x, _ := src.Logical().ReadWithData(mount+"data/"+rel, map[string][]string{"version": {v}})
			y, _ := dst.Logical().ReadWithData(mount+"data/"+rel, map[string][]string{"version": {v}})
			var xd, yd any
			if x != nil {
				xd = x.Data["data"]
			}
			if y != nil {
				yd = y.Data["data"]
			}
			if !equalJSONish(xd, yd) {
				return fmt.Errorf("%s%s version %s: values differ", mount, rel, v)
			}
		}
		return nil
	})
	return len(paths)
}

func equalJSONish(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestImportFromFilledSource(t *testing.T) {
	srcAddr, srcRoot := startTestServer(t)
	dstAddr, dstRoot := startTestServer(t)
	src, dst := vclient(t, srcAddr, srcRoot), vclient(t, dstAddr, dstRoot)
	fillSource(t, src, 1000)

	// A dry run writes nothing.
	rep, r := runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot, "-dry-run")
	if r.code != 0 || rep.Counts[importer.WouldImport] == 0 || rep.KVVersions != 0 {
		t.Fatalf("dry run: %s", r)
	}
	if m, _ := dst.Sys().ListMounts(); m["apps/"] != nil {
		t.Fatal("the dry run created a mount")
	}

	start := time.Now()
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot, "-workers=32")
	t.Logf("import: %d KV paths, %d versions in %s", rep.KVPaths, rep.KVVersions, time.Since(start))
	if r.code != 0 {
		t.Fatalf("import: %s", r)
	}
	noSecrets(t, r.stdout, r.stderr)
	if !strings.Contains(r.stderr, "items/s") {
		t.Fatalf("no progress on stderr: %q", r.stderr)
	}

	// Every readable value, version, metadata field.
	if n := sameKV(t, src, dst, "secret/"); n != 1000 {
		t.Fatalf("compared %d secret/ paths, want 1000", n)
	}
	sameKV(t, src, dst, "apps/")
	for i := range 5 {
		a, _ := src.Logical().Read(fmt.Sprintf("legacy/v1/item%d", i))
		b, _ := dst.Logical().Read(fmt.Sprintf("legacy/v1/item%d", i))
		if a == nil || b == nil || !equalJSONish(a.Data, b.Data) {
			t.Fatalf("KV v1 item%d differs", i)
		}
	}
	// Mount tuning.
	sm, _ := src.Sys().ListMounts()
	dm, _ := dst.Sys().ListMounts()
	for _, p := range []string{"apps/", "legacy/", "transit/"} {
		a, b := sm[p], dm[p]
		if b == nil || a.Type != b.Type || a.Description != b.Description || !equalJSONish(a.Options, b.Options) ||
			!equalJSONish(a.Config, b.Config) {
			t.Fatalf("mount %s: source %+v, ledger %+v", p, a, b)
		}
	}
	sa, _ := src.Sys().ListAuth()
	da, _ := dst.Sys().ListAuth()
	for _, p := range []string{"approle/", "userpass/"} {
		if da[p] == nil || da[p].Type != sa[p].Type || da[p].Description != sa[p].Description {
			t.Fatalf("auth %s: %+v", p, da[p])
		}
	}
	// Policies, verbatim.
	for i := range 3 {
		a, _ := src.Sys().GetPolicy(fmt.Sprintf("team-%d", i))
		b, _ := dst.Sys().GetPolicy(fmt.Sprintf("team-%d", i))
		if a != b || a == "" {
			t.Fatalf("policy team-%d: %q vs %q", i, a, b)
		}
	}
	pa, _ := src.Logical().Read("sys/policies/password/strong")
	pb, _ := dst.Logical().Read("sys/policies/password/strong")
	if pb == nil || pa.Data["policy"] != pb.Data["policy"] {
		t.Fatal("password policy not imported")
	}
	// The exportable transit key: same key material, versions and min_decryption_version.
	for _, p := range []string{"transit/export/encryption-key/exp", "transit/keys/exp"} {
		a, _ := src.Logical().Read(p)
		b, _ := dst.Logical().Read(p)
		if b == nil || !equalJSONish(a.Data["keys"], b.Data["keys"]) || !equalJSONish(a.Data["min_decryption_version"], b.Data["min_decryption_version"]) {
			t.Fatalf("%s differs", p)
		}
	}
	// AppRole: same role and role_id.
	for _, p := range []string{"auth/approle/role/web", "auth/approle/role/web/role-id"} {
		a, _ := src.Logical().Read(p)
		b, _ := dst.Logical().Read(p)
		if b == nil || !equalJSONish(a.Data, b.Data) {
			t.Fatalf("%s differs: %v vs %v", p, a.Data, b)
		}
	}
	if u, _ := dst.Logical().Read("auth/userpass/users/alice"); u == nil {
		t.Fatal("userpass user not imported")
	}
	// The source's created_time is kept in the history of the import.
	h, err := dst.Logical().Read("sys/ledger/history/secret/data/app00/svc0020")
	must(t, nil, err)
	meta, _ := src.Logical().Read("secret/metadata/app00/svc0020")
	srcCreated := meta.Data["versions"].(map[string]any)["3"].(map[string]any)["created_time"]
	found := false
	for _, e := range h.Data["events"].([]any) {
		ev := e.(map[string]any)
		if ev["operation"] == "version imported" && json.Number(fmt.Sprint(ev["version"])) == "3" {
			found = sameTimeString(fmt.Sprint(ev["source_created_time"]), fmt.Sprint(srcCreated))
		}
	}
	if !found {
		t.Fatalf("history does not show version 3's source created_time %v: %v", srcCreated, h.Data["events"])
	}
	// Imported values are fingerprinted: a leak of one is matched to where it lives.
	cur, err := dst.KVv2("secret").Get(t.Context(), "app00/svc0020")
	must(t, nil, err)
	pw, _ := cur.Data["password"].(string)
	m, err := dst.Logical().Write("sys/ledger/fingerprints/match", map[string]any{"candidates": []any{pw}})
	must(t, nil, err)
	matched := false
	for _, x := range m.Data["matches"].([]any) {
		loc := x.(map[string]any)
		matched = matched || (strings.Contains(fmt.Sprint(loc["path"]), "app00/svc0020") && fmt.Sprint(loc["version"]) == fmt.Sprint(cur.VersionMetadata.Version))
	}
	if pw == "" || !matched {
		t.Fatalf("an imported value is not matched by its fingerprint: %v", m.Data["matches"])
	}

	// Exactly what could not be moved, and why.
	var problems []string
	for _, it := range rep.Items {
		switch it.Status {
		case importer.Imported, importer.Updated, importer.Unchanged:
			continue
		}
		problems = append(problems, string(it.Status)+" "+it.Path)
	}
	sort.Strings(problems)
	want := []string{"not movable transit/keys/noexp", "re-issue auth/approle/role/web", "re-issue auth/userpass/users/alice"}
	if !equalJSONish(problems, want) {
		t.Fatalf("problems %v, want %v", problems, want)
	}
	deletedNotes := 0
	for _, it := range rep.Items {
		if strings.Contains(it.Reason, "deleted at the source") {
			deletedNotes++
		}
	}
	if deletedNotes != 1000/7+1+3 { // secret/ paths 0,7,…,994 and apps/ paths 0,7,14
		t.Fatalf("%d items say a version was deleted at the source, want %d", deletedNotes, 1000/7+1+3)
	}

	// A second run changes nothing; a new version at the source is all that moves.
	_, err = src.Logical().Write("secret/data/app01/svc0001", map[string]any{"data": map[string]any{"password": secretMark + "new"}})
	must(t, nil, err)
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot)
	if r.code != 0 || rep.KVVersions != 1 || rep.Counts[importer.Imported] != 0 || rep.Counts[importer.Updated] != 1 {
		t.Fatalf("second run: %d versions, counts %v\n%s", rep.KVVersions, rep.Counts, r.stderr)
	}
	noSecrets(t, r.stdout, r.stderr)

	// A conflict is reported, not overwritten; -overwrite replaces.
	_, err = dst.Logical().Write("secret/data/app02/svc0002", map[string]any{"data": map[string]any{"local": "x"}})
	must(t, nil, err)
	must(t, nil, dst.Sys().PutPolicy("team-1", `path "x" { capabilities = ["read"] }`))
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot, "-include=secret/app02/*,sys/policies/acl/*")
	if r.code != 2 || rep.Counts[importer.Conflict] != 2 {
		t.Fatalf("conflicts: counts %v\n%s", rep.Counts, r)
	}
	if p, _ := dst.Sys().GetPolicy("team-1"); !strings.Contains(p, `"x"`) {
		t.Fatal("a conflicting policy was overwritten without -overwrite")
	}
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot, "-include=secret/app02/*,sys/policies/acl/*", "-overwrite")
	if r.code != 0 || rep.Counts[importer.Conflict] != 0 {
		t.Fatalf("-overwrite: counts %v\n%s", rep.Counts, r)
	}
	sameKV(t, src, dst, "secret/")
}

func sameTimeString(a, b string) bool {
	x, e1 := time.Parse(time.RFC3339Nano, a)
	y, e2 := time.Parse(time.RFC3339Nano, b)
	return e1 == nil && e2 == nil && x.Equal(y)
}

// A real `ledger operator import` process is killed half-way; a second run finishes the job
// without a duplicate version.
func TestImportKilledHalfWayResumes(t *testing.T) {
	bin := ledgerBinary(t)
	srcAddr, srcRoot := startTestServer(t)
	dstAddr, dstRoot := startTestServer(t)
	src, dst := vclient(t, srcAddr, srcRoot), vclient(t, dstAddr, dstRoot)
	fillKV(t, src, "secret/", 400)

	cmd := exec.Command(bin, "operator", "import", "-from-address="+srcAddr, "-workers=2")
	cmd.Env = []string{"VAULT_ADDR=" + dstAddr, "VAULT_TOKEN=" + dstRoot, "LEDGER_IMPORT_FROM_TOKEN=" + srcRoot, "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Kill it once some, not all, paths are in Ledger.
	deadline := time.Now().Add(2 * time.Minute)
	killed := false
	for !killed && time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("the import finished before it could be killed (%v): make the source bigger", err)
		case <-time.After(20 * time.Millisecond):
		}
		if n := countKV(dst, "secret/"); n >= 40 {
			must(t, nil, cmd.Process.Kill())
			killed = true
		}
	}
	if !killed {
		t.Fatal("the import made no progress")
	}
	<-done
	half := countKV(dst, "secret/")
	if half >= 400 {
		t.Fatalf("killed after all %d paths were in", half)
	}
	noSecrets(t, stderr.String())

	rep, r := runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot)
	if r.code != 0 {
		t.Fatalf("resume: %s", r)
	}
	noSecrets(t, r.stdout, r.stderr)
	if rep.Counts[importer.Unchanged] == 0 || rep.Counts[importer.Imported] == 0 {
		t.Fatalf("resume after %d of 400 paths: counts %v", half, rep.Counts)
	}
	// No duplicates: every path's versions and metadata equal the source's.
	if n := sameKV(t, src, dst, "secret/"); n != 400 {
		t.Fatalf("compared %d paths", n)
	}
}

func countKV(c *api.Client, mount string) int {
	n := 0
	s, err := c.Logical().List(mount + "metadata/")
	if err != nil || s == nil {
		return 0
	}
	for _, d := range s.Data["keys"].([]any) {
		sub, err := c.Logical().List(mount + "metadata/" + d.(string))
		if err == nil && sub != nil {
			n += len(sub.Data["keys"].([]any))
		}
	}
	return n
}

func TestImportBadInput(t *testing.T) {
	srcAddr, srcRoot := startTestServer(t)
	dstAddr, dstRoot := startTestServer(t)
	src, dst := vclient(t, srcAddr, srcRoot), vclient(t, dstAddr, dstRoot)
	fillKV(t, src, "secret/", 20)
	_, err := src.Logical().Write("secret/data/private/key", map[string]any{"data": map[string]any{"v": secretMark + "private"}})
	must(t, nil, err)
	must(t, nil, src.Sys().Mount("apps", &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}))
	_, err = src.Logical().Write("apps/data/x", map[string]any{"data": map[string]any{"v": secretMark + "apps"}})
	must(t, nil, err)
	must(t, nil, dst.Sys().Mount("apps", &api.MountInput{Type: "transit"})) // collides: another type

	t.Run("usage", func(t *testing.T) {
		_, r := runImport(t, dstAddr, dstRoot)
		expect(t, r, 2, "-from-address is required")
		_, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr)
		expect(t, r, 2, "no source token")
		_, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token=x", "-database-password=nope")
		expect(t, r, 2, "MOUNT/NAME=PASSWORD")
		_, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token=x", "-auth-secret=oidc="+secretMark+"client")
		expect(t, r, 2, "auth/MOUNT=SECRET")
		noSecrets(t, r.stdout, r.stderr)
		bad := filepath.Join(t.TempDir(), "secrets.json")
		must(t, nil, os.WriteFile(bad, []byte(`["`+secretMark+`"]`), 0o600))
		_, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token=x", "-auth-secrets-file="+bad)
		expect(t, r, 2, `"auth/MOUNT": "secret"`)
		noSecrets(t, r.stdout, r.stderr)
	})
	t.Run("unreachable", func(t *testing.T) {
		_, r := runImport(t, dstAddr, dstRoot, "-from-address=http://127.0.0.1:1", "-from-token=x")
		expect(t, r, 1, "-from-address")
	})
	t.Run("unknown CA", func(t *testing.T) {
		tlsSrv := httptest.NewTLSServer(http.NotFoundHandler())
		defer tlsSrv.Close()
		_, r := runImport(t, dstAddr, dstRoot, "-from-address="+tlsSrv.URL, "-from-token=x")
		expect(t, r, 1, "-from-ca-cert")
	})
	t.Run("token without list on a tree, and a colliding mount", func(t *testing.T) {
		must(t, nil, src.Sys().PutPolicy("partial", `
path "sys/mounts" { capabilities = ["read"] }
path "sys/auth" { capabilities = ["read"] }
path "secret/metadata/*" { capabilities = ["read", "list"] }
path "secret/data/*" { capabilities = ["read"] }
path "secret/metadata/private/*" { capabilities = ["deny"] }
path "secret/metadata/private/" { capabilities = ["deny"] }
`))
		tok, err := src.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"partial"}})
		must(t, nil, err)
		rep, r := runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+tok.Auth.ClientToken)
		noSecrets(t, r.stdout, r.stderr)
		if r.code != 2 {
			t.Fatalf("exit %d, want 2 (a conflict)\n%s", r.code, r)
		}
		got := map[string]importer.Status{}
		for _, it := range rep.Items {
			if it.Status != importer.Imported {
				got[it.Path] = it.Status
			}
		}
		if got["secret/private/"] != importer.Unreadable || got["apps/"] != importer.Conflict || got["sys/policies/acl"] != importer.Unreadable {
			t.Fatalf("report: %v", got)
		}
		if rep.Counts[importer.Imported] != 20 {
			t.Fatalf("imported %d, want the 20 readable paths (counts %v)", rep.Counts[importer.Imported], rep.Counts)
		}
		if s, _ := dst.Logical().Read("apps/keys/x"); s != nil {
			t.Fatal("something was written into the colliding mount")
		}
	})
	t.Run("import endpoint needs sudo", func(t *testing.T) {
		must(t, nil, dst.Sys().PutPolicy("writer", `path "secret/*" { capabilities = ["create", "update", "read"] }`))
		tok, err := dst.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"writer"}})
		must(t, nil, err)
		w := vclient(t, dstAddr, tok.Auth.ClientToken)
		_, err = w.Logical().Write("secret/import/forged", map[string]any{"version": 1, "created_time": "2001-01-01T00:00:00Z", "data": map[string]any{"a": "b"}})
		if err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Fatalf("a token without sudo imported a backdated version: %v", err)
		}
		if s, _ := dst.Logical().Read("secret/metadata/forged"); s != nil {
			t.Fatal("the refused import left a secret")
		}
	})
	t.Run("sealed source", func(t *testing.T) {
		must(t, nil, src.Sys().Seal())
		_, r := runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot)
		expect(t, r, 1, "sealed")
		if !strings.Contains(r.stderr, "Unseal the source") {
			t.Fatalf("no hint: %s", r)
		}
	})
}

// BenchmarkImport measures KV paths imported per second from a source of 1,000 paths × 3
// versions into an empty Ledger, over loopback HTTP, with 8 and with 32 workers (same run).
func BenchmarkImport(b *testing.B) {
	for _, workers := range []int{8, 32} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				srcAddr, srcRoot := startTestServer(b)
				dstAddr, dstRoot := startTestServer(b)
				src, dst := vclient(b, srcAddr, srcRoot), vclient(b, dstAddr, dstRoot)
				fillKV(b, src, "secret/", 1000)
				b.StartTimer()
				start := time.Now()
				rep, err := importer.Run(context.Background(), src, dst, importer.Options{Workers: workers, Include: []string{"secret/*"}})
				el := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(rep.KVPaths)/el.Seconds(), "paths/s")
				b.ReportMetric(float64(rep.KVVersions)/el.Seconds(), "versions/s")
				b.Logf("%d paths, %d versions in %s (%s imported)", rep.KVPaths, rep.KVVersions, el, strconv.Itoa(rep.Counts[importer.Imported]))
			}
		})
	}
}
