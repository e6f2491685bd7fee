package httpapi_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"

	"github.com/ledger-secrets/ledger/engines/database/dbtest"
)

// TestVaultAPIRemount: sys/remount moves a transit mount, a KV mount and an auth method with
// everything they hold; bad moves are 400 and change nothing.
func TestVaultAPIRemount(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()

	if err := root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("transit/keys/app", map[string]any{"type": "aes256-gcm96"}); err != nil {
		t.Fatal(err)
	}
	enc, err := root.Logical().Write("transit/encrypt/app", map[string]any{"plaintext": "aGVsbG8="})
	if err != nil {
		t.Fatal(err)
	}
	ct := enc.Data["ciphertext"].(string)
	before, _ := root.Sys().ListMounts()

	t.Run("transit", func(t *testing.T) {
		if err := root.Sys().Remount("transit", "transit2"); err != nil {
			t.Fatalf("remount: %v", err)
		}
		dec, err := root.Logical().Write("transit2/decrypt/app", map[string]any{"ciphertext": ct})
		if err != nil || dec.Data["plaintext"] != "aGVsbG8=" {
			t.Fatalf("decrypt at the new path: %v %v", err, dec)
		}
		if _, err := root.Logical().Write("transit2/encrypt/app", map[string]any{"plaintext": "aGk="}); err != nil {
			t.Fatalf("encrypt at the new path: %v", err)
		}
		_, err = root.Logical().Write("transit/decrypt/app", map[string]any{"ciphertext": ct})
		respErr(t, err, http.StatusNotFound, "")
		after, _ := root.Sys().ListMounts()
		if after["transit/"] != nil || after["transit2/"] == nil || after["transit2/"].UUID != before["transit/"].UUID || after["transit2/"].Accessor != before["transit/"].Accessor {
			t.Fatalf("mount table after the move: %+v", after["transit2/"])
		}
	})

	t.Run("kv and status", func(t *testing.T) {
		if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": "p1"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.KVv2("secret").Put(ctx, "app/db", map[string]any{"password": "p2"}); err != nil {
			t.Fatal(err)
		}
		out, err := root.Sys().StartRemount("secret", "kv/team")
		if err != nil || out.MigrationID == "" {
			t.Fatalf("start remount: %v %+v", err, out)
		}
		st, err := root.Sys().RemountStatus(out.MigrationID)
		if err != nil || st.MigrationInfo == nil || st.MigrationInfo.MigrationStatus != "success" ||
			st.MigrationInfo.SourceMount != "secret/" || st.MigrationInfo.TargetMount != "kv/team/" {
			t.Fatalf("remount status: %v %+v", err, st)
		}
		v1, err := root.KVv2("kv/team").GetVersion(ctx, "app/db", 1)
		if err != nil || v1.Data["password"] != "p1" {
			t.Fatalf("version 1 at the new path: %v %v", err, v1)
		}
		// History follows the mount.
		h := raw(t, s.URL, http.MethodGet, "sys/ledger/history/kv/team/data/app/db", nil, tokenHeader(s.RootToken))
		if h.Status != http.StatusOK || strings.Count(string(h.Body), "version written") < 2 {
			t.Fatalf("history at the new path: %d %s", h.Status, h.Body)
		}
		_, err = root.Sys().RemountStatus("00000000-0000-0000-0000-000000000000")
		respErr(t, err, http.StatusBadRequest, "no remount migration")
	})

	t.Run("auth", func(t *testing.T) {
		if err := root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/approle/role/r", map[string]any{"token_policies": "default"}); err != nil {
			t.Fatal(err)
		}
		rid, _ := root.Logical().Read("auth/approle/role/r/role-id")
		sid, _ := root.Logical().Write("auth/approle/role/r/secret-id", nil)
		if err := root.Sys().Remount("auth/approle", "auth/ci"); err != nil {
			t.Fatalf("move auth: %v", err)
		}
		login, _ := approle.NewAppRoleAuth(rid.Data["role_id"].(string), &approle.SecretID{FromString: sid.Data["secret_id"].(string)}, approle.WithMountPath("ci"))
		if _, err := s.Client(t, "").Auth().Login(ctx, login); err != nil {
			t.Fatalf("login at the moved auth method: %v", err)
		}
	})

	t.Run("bad moves", func(t *testing.T) {
		if err := root.Sys().Mount("other", &vault.MountInput{Type: "kv"}); err != nil {
			t.Fatal(err)
		}
		for name, tc := range map[string]struct {
			from, to, want string
		}{
			"onto an existing mount":  {"transit2", "other", "already in use"},
			"under an existing mount": {"transit2", "other/sub", "already in use"},
			"into sys":                {"transit2", "sys/x", "reserved"},
			"onto auth/token":         {"auth/ci", "auth/token", "reserved"},
			"from auth/token":         {"auth/token", "auth/tok2", "reserved"},
			"into cubbyhole":          {"transit2", "cubbyhole", "reserved"},
			"into identity":           {"transit2", "identity/x", "reserved"},
			"from sys":                {"sys", "sys2", "reserved"},
			"absent source":           {"nothing", "x", "no mount at"},
			"secret to auth":          {"transit2", "auth/t", "under auth/"},
			"auth to secret":          {"auth/ci", "ci", "auth methods stay under auth/"},
			"empty to":                {"transit2", "", "\"to\" is required"},
			"bad path":                {"transit2", "a/../b", "invalid mount path"},
			"same path":               {"transit2", "transit2/", "already at"},
		} {
			_, err := root.Sys().StartRemount(tc.from, tc.to)
			var re *vault.ResponseError
			if !errorsAs(err, &re) || re.StatusCode != http.StatusBadRequest || !strings.Contains(strings.Join(re.Errors, " "), tc.want) {
				t.Errorf("%s: got %v, want 400 containing %q", name, err, tc.want)
			}
		}
		after, _ := root.Sys().ListMounts()
		if after["transit2/"] == nil || after["other/"] == nil || len(after) != len(before)+1 {
			t.Fatalf("refused moves changed the mount table: %v", after)
		}
		// The moves replay to the same views (leases renamed, mounts re-keyed, cubbyholes).
		verifyOK(t, root, "genesis")
		// Remount needs sudo.
		putPolicy(t, root, "mounts-no-sudo", `path "sys/remount" { capabilities = ["update"] }`)
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"mounts-no-sudo"}})
		denied(t, s.Client(t, tok.ClientToken).Sys().Remount("transit2", "transit3"))
	})
}

// TestRemountDatabaseLeases: leases of a moved database mount take the new prefix and still
// revoke the credentials they stand for.
func TestRemountDatabaseLeases(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	l := dbtest.LessonPostgres(t)
	dbConfigure(t, root, l, "readonly")
	dbRole(t, root, l, "readonly", "1h", "24h")
	a, b := dbCreds(t, root, l, "readonly"), dbCreds(t, root, l, "readonly")
	if err := root.Sys().Remount("database", "db/prod"); err != nil {
		t.Fatalf("remount: %v", err)
	}
	if got := dbLeases(t, root, "database/creds/readonly/"); len(got) != 0 {
		t.Fatalf("leases left under the old prefix: %v", got)
	}
	moved := dbLeases(t, root, "db/prod/creds/readonly/")
	if len(moved) != 2 {
		t.Fatalf("leases under the new prefix: %v", moved)
	}
	newID := "db/prod/" + strings.TrimPrefix(a.leaseID, "database/")
	if err := root.Sys().Revoke(newID); err != nil {
		t.Fatalf("revoke a moved lease: %v", err)
	}
	if !dbPoll(10*time.Second, func() bool { return !dbLogs(l, a) }) {
		t.Fatal("the revoked moved lease's credential still logs in")
	}
	if err := root.Sys().RevokePrefix("db/prod/creds/readonly"); err != nil {
		t.Fatalf("revoke-prefix at the new path: %v", err)
	}
	if !dbPoll(10*time.Second, func() bool { return !dbLogs(l, b) }) {
		t.Fatal("revoke-prefix at the new path left a credential working")
	}
	// New credentials come from the new path.
	if _, err := root.Logical().Read("db/prod/creds/readonly"); err != nil {
		t.Fatalf("creds at the new path: %v", err)
	}
	verifyOK(t, root, "genesis")
	if err := root.Sys().Unmount("db/prod"); err != nil {
		t.Fatal(err)
	}
}

func errorsAs(err error, re **vault.ResponseError) bool { return errors.As(err, re) }
