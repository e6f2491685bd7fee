package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/importer"
	"github.com/ledger-secrets/ledger/engines/database/dbtest"
	"github.com/ledger-secrets/ledger/engines/jwt/oidctest"
)

// oidcCallback is the vault CLI's OIDC redirect URI.
const oidcCallback = "http://localhost:8250/oidc/callback"

// TestImportAuthDatabaseIdentity: what TestImportFromFilledSource does not fill — a database
// connection and its role (the password given on the command line, so the imported connection
// issues working credentials), JWT, OIDC and Kubernetes auth configurations and roles (the
// secret fields the source never returns reported for re-issue), and identity entities,
// aliases and groups (matched by name, members mapped to this server's IDs; an external group
// with its group alias) — arrives field for field, and a second run finds nothing left to
// import.
func TestImportAuthDatabaseIdentity(t *testing.T) {
	lesson := dbtest.LessonPostgres(t)
	srcAddr, srcRoot := startTestServer(t)
	dstAddr, dstRoot := startTestServer(t)
	src, dst := vclient(t, srcAddr, srcRoot), vclient(t, dstAddr, dstRoot)
	sys := src.Sys()
	write := func(path string, body map[string]any) *api.Secret {
		t.Helper()
		s, err := src.Logical().Write(path, body)
		if err != nil {
			t.Fatalf("source: write %s: %v", path, err)
		}
		return s
	}

	// Database: a connection with its admin password, and a role.
	must(t, nil, sys.Mount("database", &api.MountInput{Type: "database"}))
	write("database/config/pg", map[string]any{"plugin_name": lesson.Plugin, "connection_url": lesson.ConnectionURL,
		"username": lesson.AdminUser, "password": lesson.AdminPassword, "allowed_roles": "readonly"})
	// A second connection whose password is not given: imported unverified, to be re-issued.
	write("database/config/nopw", map[string]any{"plugin_name": lesson.Plugin, "connection_url": lesson.ConnectionURL,
		"username": lesson.AdminUser, "password": lesson.AdminPassword, "allowed_roles": ""})
	write("database/roles/readonly", map[string]any{"db_name": "pg", "creation_statements": lesson.Readonly,
		"revocation_statements": lesson.Revocation, "default_ttl": "1h", "max_ttl": "24h"})

	// JWT: validation by a public key, one role.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	must(t, nil, sys.EnableAuthWithOptions("jwt", &api.EnableAuthOptions{Type: "jwt", Description: "CI jobs"}))
	write("auth/jwt/config", map[string]any{"jwt_validation_pubkeys": []string{pub}, "bound_issuer": "https://ci.example"})
	write("auth/jwt/role/deploy", map[string]any{"role_type": "jwt", "user_claim": "sub", "bound_audiences": []string{"ledger"},
		"bound_claims": map[string]any{"project": "web"}, "token_policies": []string{"team-0"}, "token_ttl": "15m"})

	// OIDC: a provider (a real one: its discovery is read when the configuration is written,
	// here and in Ledger), a role, and an external group tied to the provider's group by a
	// group alias.
	op := oidctest.New(t, oidcCallback)
	must(t, nil, sys.EnableAuthWithOptions("oidc", &api.EnableAuthOptions{Type: "oidc"}))
	write("auth/oidc/config", map[string]any{"oidc_discovery_url": op.URL, "oidc_client_id": op.ClientID,
		"oidc_client_secret": op.ClientSecret, "default_role": "engineer"})
	write("auth/oidc/role/engineer", map[string]any{"user_claim": "email", "groups_claim": "groups", "oidc_scopes": "email,groups",
		"allowed_redirect_uris": oidcCallback, "token_policies": "default", "claim_mappings": map[string]any{"email": "email"}})
	// A second OIDC mount whose client secret is not given to the import.
	must(t, nil, sys.EnableAuthWithOptions("sso", &api.EnableAuthOptions{Type: "oidc"}))
	ssoConfig := map[string]any{"oidc_discovery_url": op.URL, "oidc_client_id": op.ClientID,
		"oidc_client_secret": op.ClientSecret, "default_role": "engineer"}
	write("auth/sso/config", ssoConfig)

	// Kubernetes: a cluster and a role (the reviewer JWT is write-only).
	must(t, nil, sys.EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}))
	write("auth/kubernetes/config", map[string]any{"kubernetes_host": "https://127.0.0.1:6443",
		"token_reviewer_jwt": secretMark + "reviewer", "disable_local_ca_jwt": true})
	write("auth/kubernetes/role/app", map[string]any{"bound_service_account_names": []string{"app"},
		"bound_service_account_namespaces": []string{"prod"}, "token_policies": []string{"team-1"}, "token_ttl": "20m"})

	// Identity: an entity with an alias on a userpass mount, a group holding it, and a group
	// holding that group.
	must(t, nil, sys.EnableAuthWithOptions("userpass", &api.EnableAuthOptions{Type: "userpass"}))
	auths, err := sys.ListAuth()
	must(t, nil, err)
	ent := write("identity/entity", map[string]any{"name": "alice", "policies": []string{"team-2"},
		"metadata": map[string]any{"team": "blue"}})
	entID := ent.Data["id"].(string)
	write("identity/entity-alias", map[string]any{"name": "alice", "canonical_id": entID, "mount_accessor": auths["userpass/"].Accessor})
	inner := write("identity/group", map[string]any{"name": "blue", "policies": []string{"team-0"},
		"member_entity_ids": []string{entID}, "metadata": map[string]any{"floor": "3"}})
	write("identity/group", map[string]any{"name": "everyone", "member_group_ids": []string{inner.Data["id"].(string)}})
	ext := write("identity/group", map[string]any{"name": "engineers", "type": "external", "policies": []string{"team-3"}})
	write("identity/group-alias", map[string]any{"name": "engineering", "canonical_id": ext.Data["id"], "mount_accessor": auths["oidc/"].Accessor})

	rep, r := runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot,
		"-database-password=database/pg="+lesson.AdminPassword, "-auth-secret=auth/oidc="+op.ClientSecret)
	noSecrets(t, r.stdout, r.stderr)
	if strings.Contains(r.stdout+r.stderr, op.ClientSecret) {
		t.Errorf("the import printed the OIDC client secret")
	}
	if r.code != 0 {
		t.Fatalf("import: %s", r)
	}
	status := map[string]importer.Status{}
	for _, it := range rep.Items {
		status[it.Path] = it.Status
	}
	for path, want := range map[string]importer.Status{
		"auth/kubernetes/config": importer.Reissue,  // token_reviewer_jwt is never returned
		"auth/jwt/config":        importer.Imported, // no client ID, so no client secret to miss
		"auth/oidc/config":       importer.Imported, // its client secret given: -auth-secret
		"auth/sso/config":        importer.Reissue,  // not given: imported without it and its client ID
		"identity/group/name/engineers/alias/auth/oidc/engineering": importer.Imported,
		"database/config/nopw": importer.Reissue, // its password was not given
	} {
		if status[path] != want {
			t.Errorf("%s: reported %q, want %q (report: %+v)", path, status[path], want, rep.Items)
		}
	}
	if status["database/config/pg"] == importer.Reissue {
		t.Errorf("database/config/pg reported for re-issue though its password was given")
	}

	same := func(path string, ignore ...string) {
		t.Helper()
		a, err := src.Logical().Read(path)
		must(t, nil, err)
		b, err := dst.Logical().Read(path)
		if err != nil || b == nil || a == nil {
			t.Fatalf("%s: source %v, ledger %v (%v)", path, a, b, err)
		}
		for k, v := range a.Data {
			if !strings.Contains(","+strings.Join(ignore, ",")+",", ","+k+",") && !equalJSONish(v, b.Data[k]) {
				t.Errorf("%s: %s differs: source %v, ledger %v", path, k, v, b.Data[k])
			}
		}
	}
	same("database/config/pg")
	same("database/config/nopw", "verify_connection") // not verified: no password here
	same("database/roles/readonly")
	same("auth/jwt/config")
	same("auth/jwt/role/deploy")
	same("auth/oidc/config")
	same("auth/oidc/role/engineer")
	same("auth/kubernetes/config", "token_reviewer_jwt_set") // the JWT itself is re-issued by hand
	same("auth/kubernetes/role/app")

	// The imported connection works: its password came from the command line.
	creds, err := dst.Logical().Read("database/creds/readonly")
	if err != nil || creds == nil {
		t.Fatalf("credentials from the imported connection: %v", err)
	}
	user, _ := creds.Data["username"].(string)
	pw, _ := creds.Data["password"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := dbtest.PostgresLogin(ctx, lesson.Super, user, pw, "SELECT count(*) FROM users"); err != nil {
		t.Fatalf("the issued user cannot log in: %v", err)
	}
	if _, err := dst.Logical().Write("sys/leases/revoke", map[string]any{"lease_id": creds.LeaseID}); err != nil {
		t.Fatal(err)
	}

	// Identity, by name, with this server's IDs.
	dauths, err := dst.Sys().ListAuth()
	must(t, nil, err)
	de, err := dst.Logical().Read("identity/entity/name/alice")
	if err != nil || de == nil {
		t.Fatalf("entity alice: %v", err)
	}
	if !equalJSONish(de.Data["policies"], []string{"team-2"}) || !equalJSONish(de.Data["metadata"], map[string]any{"team": "blue"}) {
		t.Errorf("entity alice: %v", de.Data)
	}
	aliases, _ := de.Data["aliases"].([]any)
	if len(aliases) != 1 {
		t.Fatalf("entity alice has %d aliases, want 1: %v", len(aliases), de.Data["aliases"])
	}
	if a := aliases[0].(map[string]any); a["name"] != "alice" || a["mount_accessor"] != dauths["userpass/"].Accessor {
		t.Errorf("alias %v: want alice on this server's userpass/ (%s)", a, dauths["userpass/"].Accessor)
	}
	blue, err := dst.Logical().Read("identity/group/name/blue")
	if err != nil || blue == nil {
		t.Fatalf("group blue: %v", err)
	}
	if !equalJSONish(blue.Data["member_entity_ids"], []string{de.Data["id"].(string)}) ||
		!equalJSONish(blue.Data["policies"], []string{"team-0"}) || !equalJSONish(blue.Data["metadata"], map[string]any{"floor": "3"}) {
		t.Errorf("group blue: %v", blue.Data)
	}
	everyone, err := dst.Logical().Read("identity/group/name/everyone")
	if err != nil || everyone == nil {
		t.Fatalf("group everyone: %v", err)
	}
	if !equalJSONish(everyone.Data["member_group_ids"], []string{blue.Data["id"].(string)}) {
		t.Errorf("group everyone: members %v, want [%s]", everyone.Data["member_group_ids"], blue.Data["id"])
	}

	// The external group is tied to the provider's group on this server's oidc/ mount, and the
	// imported OIDC configuration works: an authorization URL comes from the provider's
	// discovery document, for the imported role.
	eng, err := dst.Logical().Read("identity/group/name/engineers")
	if err != nil || eng == nil {
		t.Fatalf("group engineers: %v", err)
	}
	if a, _ := eng.Data["alias"].(map[string]any); a["name"] != "engineering" || a["mount_accessor"] != dauths["oidc/"].Accessor ||
		eng.Data["type"] != "external" || !equalJSONish(eng.Data["policies"], []string{"team-3"}) {
		t.Errorf("group engineers: %v, want external, team-3, alias engineering on %s", eng.Data, dauths["oidc/"].Accessor)
	}
	au, err := dst.Logical().Write("auth/oidc/oidc/auth_url", map[string]any{"role": "engineer", "redirect_uri": oidcCallback})
	if err != nil || au == nil {
		t.Fatalf("auth_url on the imported oidc/ mount: %v", err)
	}
	if u, _ := au.Data["auth_url"].(string); !strings.HasPrefix(u, op.URL+"/") || !strings.Contains(u, "client_id="+op.ClientID) {
		t.Errorf("auth_url %q: want the provider's authorization endpoint for client %s", u, op.ClientID)
	}

	// sso/ came without its client ID (taken only with the secret), everything else as read.
	sso, err := dst.Logical().Read("auth/sso/config")
	if err != nil || sso == nil || sso.Data["oidc_client_id"] != "" || sso.Data["oidc_discovery_url"] != op.URL || sso.Data["default_role"] != "engineer" {
		t.Fatalf("auth/sso/config here: %v (%v)", sso, err)
	}
	for _, it := range rep.Items {
		if it.Path == "auth/sso/config" && !strings.Contains(it.Reason, "-auth-secret=auth/sso=") {
			t.Errorf("auth/sso/config: reason %q does not say how to give the secret", it.Reason)
		}
	}

	// A second run: nothing new, no conflict with what the first run wrote; the connection
	// without its password is still to be re-issued.
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot,
		"-database-password=database/pg="+lesson.AdminPassword, "-auth-secret=auth/oidc="+op.ClientSecret)
	if r.code != 0 || rep.Counts[importer.Imported] != 0 || rep.Counts[importer.Updated] != 0 || rep.Counts[importer.Conflict] != 0 {
		t.Fatalf("second run: %v\n%s", rep.Counts, r)
	}
	for _, it := range rep.Items {
		if (it.Path == "database/config/nopw" || it.Path == "auth/sso/config") && it.Status != importer.Reissue {
			t.Errorf("second run: %s %q, want %q", it.Path, it.Status, importer.Reissue)
		}
	}

	// Once the client ID and secret are set here by hand, sso/ is no longer listed.
	if _, err := dst.Logical().Write("auth/sso/config", ssoConfig); err != nil {
		t.Fatal(err)
	}
	rep, r = runImport(t, dstAddr, dstRoot, "-from-address="+srcAddr, "-from-token="+srcRoot,
		"-database-password=database/pg="+lesson.AdminPassword, "-auth-secret=auth/oidc="+op.ClientSecret)
	for _, it := range rep.Items {
		if it.Path == "auth/sso/config" && it.Status != importer.Unchanged {
			t.Errorf("third run, the secret set by hand: %s %q (%s), want %q", it.Path, it.Status, it.Reason, importer.Unchanged)
		}
	}
	if r.code != 0 {
		t.Fatalf("third run: %s", r)
	}
}
