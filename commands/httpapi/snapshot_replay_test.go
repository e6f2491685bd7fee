package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/lease"
)

// Leases come from engines with side effects (database), which this build does not serve yet;
// these tests put lease events in the log directly, as such an engine's requests would, under a
// KV mount (whose backend has nothing to undo, so a revocation shows as lease.revoked.v1).

func (s *snapServer) appendEvents(t *testing.T, evs ...ledger.Event) {
	t.Helper()
	if _, err := s.Log.Append(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
}

func leaseIssuedEvent(id, mountPath, mountUUID string, expire time.Time) ledger.Event {
	b, _ := json.Marshal(lease.IssuedPayload{ID: id, MountUUID: mountUUID, MountPath: mountPath, Path: "creds/app",
		IssueTime: time.Now(), ExpireTime: expire, MaxExpire: expire.Add(24 * time.Hour), Renewable: true})
	return ledger.Event{Type: lease.Issued, Subject: ledger.SubjectFor("lease", id), Payload: b}
}

func leaseRenewedEvent(id string, expire time.Time) ledger.Event {
	b, _ := json.Marshal(lease.RenewedPayload{ID: id, ExpireTime: expire, RenewTime: time.Now()})
	return ledger.Event{Type: lease.Renewed, Subject: ledger.SubjectFor("lease", id), Payload: b}
}

func leaseExpiry(t *testing.T, c *vault.Client, id string) (time.Time, bool) {
	t.Helper()
	s, err := c.Sys().Lookup(id)
	if err != nil || s == nil {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339Nano, s.Data["expire_time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return at, true
}

// eventTypes counts the log's events by type (types are readable without keys).
func (s *snapServer) eventTypes(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := s.Log.ReadRange(context.Background(), 1, 0, false, func(b ledger.Batch) error {
		for _, e := range b.Events {
			out[e.Type()]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSnapshotRestoreRevokesNothing guards against vault#22275 (a restored cluster revoking
// credentials still in use): the restore revokes nothing; the restored lease view keeps the
// TTLs the snapshot recorded, renewals included, so a lease whose original TTL ran out but was
// renewed before the snapshot stays live; a renewal after the snapshot is rolled back with
// everything else, and still nothing is revoked before the restored expiry.
func TestSnapshotRestoreRevokesNothing(t *testing.T) {
	s := newSnapServer(t, true)
	root := s.Client(t, s.RootToken)
	mounts, err := root.Sys().ListMounts()
	if err != nil {
		t.Fatal(err)
	}
	uuid := mounts["secret/"].UUID
	now := time.Now()
	renewedBefore, renewedAfter := "secret/creds/app/renewed-before", "secret/creds/app/renewed-after"
	s.appendEvents(t,
		leaseIssuedEvent(renewedBefore, "secret/", uuid, now.Add(2*time.Second)),
		leaseRenewedEvent(renewedBefore, now.Add(time.Hour)),
		leaseIssuedEvent(renewedAfter, "secret/", uuid, now.Add(time.Hour)))
	eventually(t, 5*time.Second, "leases visible", func() bool {
		_, a := leaseExpiry(t, root, renewedBefore)
		_, b := leaseExpiry(t, root, renewedAfter)
		return a && b
	})
	snap := save(t, root)
	s.appendEvents(t, leaseRenewedEvent(renewedAfter, now.Add(2*time.Hour)))

	if err := root.Sys().RaftSnapshotRestore(bytes.NewReader(snap), false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(now.Add(3 * time.Second))) // past the first lease's original TTL
	at, ok := leaseExpiry(t, root, renewedBefore)
	if !ok || at.Sub(now) < 59*time.Minute {
		t.Fatalf("lease renewed before the snapshot: live=%v expiry in %v; want live, by its renewed TTL", ok, at.Sub(now))
	}
	at, ok = leaseExpiry(t, root, renewedAfter)
	if !ok || at.Sub(now) > 61*time.Minute {
		t.Fatalf("lease renewed after the snapshot: live=%v expiry in %v; want live at the snapshot's TTL (1h)", ok, at.Sub(now))
	}
	if n := s.eventTypes(t)[lease.Revoked]; n != 0 {
		t.Fatalf("%d lease.revoked.v1 events after a restore; want none", n)
	}
}

// TestReplayVerifyAfterMixedWorkload: after every kind of event this build writes — mounts,
// KV v2 and v1 writes, patches, deletes, undeletes, destroys, metadata, config, policies,
// tokens created, used, renewed and revoked, leases issued, renewed, revoked and failed, a key
// rotation, a restore — replay verify rebuilds every view and finds it equal to the live one.
func TestReplayVerifyAfterMixedWorkload(t *testing.T) {
	ctx := context.Background()
	s := newSnapServer(t, true)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := kv.Put(ctx, "a", map[string]any{"x": "1"})
	must(err)
	_, err = kv.Put(ctx, "a", map[string]any{"x": "2"})
	must(err)
	_, err = kv.Patch(ctx, "a", map[string]any{"y": "3"})
	must(err)
	must(kv.DeleteVersions(ctx, "a", []int{1}))
	must(kv.Undelete(ctx, "a", []int{1}))
	must(kv.Destroy(ctx, "a", []int{2}))
	must(kv.Delete(ctx, "a"))
	must(kv.PutMetadata(ctx, "b", vault.KVMetadataPutInput{MaxVersions: 2, CustomMetadata: map[string]any{"team": "x"}}))
	for i := range 4 {
		_, err = kv.Put(ctx, "b", map[string]any{"n": i}) // max_versions trims
		must(err)
	}
	_, err = kv.Put(ctx, "gone", map[string]any{"x": "1"})
	must(err)
	must(kv.DeleteMetadata(ctx, "gone"))
	_, err = root.Logical().Write("secret/config", map[string]any{"max_versions": 5})
	must(err)
	must(root.Sys().Mount("kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}))
	_, err = root.Logical().Write("kv1/k", map[string]any{"v": "1"})
	must(err)
	_, err = root.Logical().Delete("kv1/k")
	must(err)
	must(root.Sys().Mount("tmp", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}))
	_, err = root.KVv2("tmp").Put(ctx, "x", map[string]any{"v": "1"})
	must(err)
	must(root.Sys().Unmount("tmp"))
	putPolicy(t, root, "p1", `path "secret/*" { capabilities = ["read"] }
path "auth/token/create" { capabilities = ["update"] }`)
	putPolicy(t, root, "p2", `path "kv1/*" { capabilities = ["read"] }`)
	must(root.Sys().DeletePolicy("p2"))
	tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"p1"}, TTL: "1h"})
	child := newToken(t, s.Client(t, tok.ClientToken), &vault.TokenCreateRequest{Policies: []string{"p1"}})
	_, err = root.Auth().Token().Renew(tok.ClientToken, 3600)
	must(err)
	limited := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"p1"}, NumUses: 3})
	_, err = s.Client(t, limited.ClientToken).KVv2("secret").Get(ctx, "b")
	must(err)
	must(root.Auth().Token().RevokeTree(child.ClientToken))
	// Token roles: written, rewritten, one deleted, a token created through one.
	_, err = root.Logical().Write("auth/token/roles/ci", map[string]any{"allowed_policies": "p1", "orphan": true})
	must(err)
	_, err = root.Logical().Write("auth/token/roles/ci", map[string]any{"token_explicit_max_ttl": "2h"})
	must(err)
	_, err = root.Logical().Write("auth/token/roles/tmp", map[string]any{"renewable": false})
	must(err)
	_, err = root.Logical().Delete("auth/token/roles/tmp")
	must(err)
	_, err = root.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{}, "ci")
	must(err)
	// Every other engine's events: transit keys (create, rotate, config, trim), AppRole roles,
	// secret ids and logins, userpass users, database configs and roles, an audit device, and a
	// keyring rotation.
	must(root.Sys().Mount("transit", &vault.MountInput{Type: "transit"}))
	_, err = root.Logical().Write("transit/keys/k", nil)
	must(err)
	_, err = root.Logical().Write("transit/keys/k/rotate", nil)
	must(err)
	_, err = root.Logical().Write("transit/keys/k/rotate", nil)
	must(err)
	_, err = root.Logical().Write("transit/keys/k/config", map[string]any{"min_decryption_version": 2, "min_encryption_version": 2, "deletion_allowed": true})
	must(err)
	_, err = root.Logical().Write("transit/keys/k/trim", map[string]any{"min_available_version": 2})
	must(err)
	must(root.Sys().EnableAuthWithOptions("approle", &vault.EnableAuthOptions{Type: "approle"}))
	_, err = root.Logical().Write("auth/approle/role/ci", map[string]any{"token_policies": "p1", "secret_id_num_uses": 2})
	must(err)
	rid, err := root.Logical().Read("auth/approle/role/ci/role-id")
	must(err)
	sid, err := root.Logical().Write("auth/approle/role/ci/secret-id", nil)
	must(err)
	_, err = s.Client(t, "").Logical().Write("auth/approle/login", map[string]any{"role_id": rid.Data["role_id"], "secret_id": sid.Data["secret_id"]})
	must(err)
	must(root.Sys().EnableAuthWithOptions("userpass", &vault.EnableAuthOptions{Type: "userpass"}))
	_, err = root.Logical().Write("auth/userpass/users/alice", map[string]any{"password": "pw-for-replay", "token_policies": "p1"})
	must(err)
	_, err = s.Client(t, "").Logical().Write("auth/userpass/login/alice", map[string]any{"password": "pw-for-replay"})
	must(err)
	must(root.Sys().Mount("database", &vault.MountInput{Type: "database"}))
	_, err = root.Logical().Write("database/config/db", map[string]any{"plugin_name": "postgresql-database-plugin",
		"connection_url": "postgresql://{{username}}:{{password}}@127.0.0.1:1/x", "username": "u", "password": "p",
		"allowed_roles": "*", "verify_connection": false})
	must(err)
	_, err = root.Logical().Write("database/roles/ro", map[string]any{"db_name": "db", "creation_statements": `CREATE ROLE "{{name}}"`, "default_ttl": "1h"})
	must(err)
	must(root.Sys().EnableAuditWithOptions("file", &vault.EnableAuditOptions{Type: "file", Options: map[string]string{"file_path": t.TempDir() + "/audit.log"}}))
	must(root.Sys().Rotate())

	mounts, err := root.Sys().ListMounts()
	must(err)
	uuid := mounts["secret/"].UUID
	now := time.Now()
	s.appendEvents(t,
		leaseIssuedEvent("secret/creds/app/l1", "secret/", uuid, now.Add(time.Hour)),
		leaseIssuedEvent("secret/creds/app/l2", "secret/", uuid, now.Add(time.Hour)),
		leaseIssuedEvent("gone/creds/app/l3", "gone/", "no-such-mount", now.Add(-time.Second)))
	s.appendEvents(t, leaseRenewedEvent("secret/creds/app/l1", now.Add(2*time.Hour)))
	eventually(t, 5*time.Second, "lease l2 visible", func() bool { _, ok := leaseExpiry(t, root, "secret/creds/app/l2"); return ok })
	must(root.Sys().Revoke("secret/creds/app/l2"))
	eventually(t, 5*time.Second, "a failed revocation recorded", func() bool { return s.eventTypes(t)[lease.RevocationFailed] > 0 })
	must(root.Sys().Rotate())
	_, err = kv.Put(ctx, "after-rotate", map[string]any{"v": "1"})
	must(err)

	types := s.eventTypes(t)
	for _, want := range []string{"kv.version.written.v1", "kv.versions.deleted.v1", "kv.versions.undeleted.v1",
		"kv.versions.destroyed.v1", "kv.metadata.written.v1", "kv.metadata.deleted.v1", "kv.config.written.v1",
		"kv.v1.written.v1", "kv.v1.deleted.v1", "mount.enabled.v1", "mount.disabled.v1", "policy.written.v1",
		"policy.deleted.v1", lease.Issued, lease.Renewed, lease.Revoked, lease.RevocationFailed, "keyring.rotated.v1"} {
		if types[want] == 0 {
			t.Errorf("the workload wrote no %s (types: %v)", want, types)
		}
	}
	verifyOK(t, root, "genesis")

	// Only sudo may verify.
	weak := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"p1"}})
	_, err = s.Client(t, weak.ClientToken).Logical().Write("sys/ledger/replay/verify", nil)
	denied(t, err)

	// After a restore the rebuild starts from the restored snapshot; the automatic snapshot
	// taken right after it is checked too.
	snap := save(t, root)
	_, err = kv.Put(ctx, "rolled-back", map[string]any{"v": "1"})
	must(err)
	must(root.Sys().RaftSnapshotRestore(bytes.NewReader(snap), false))
	_, err = kv.Put(ctx, "after-restore", map[string]any{"v": "1"})
	must(err)
	var res map[string]any
	eventually(t, 10*time.Second, "verify with the post-restore automatic snapshot", func() bool {
		res = verifyOK(t, root, "restore/")
		return res["snapshot"] != nil
	})
	if sn := res["snapshot"].(map[string]any); sn["ok"] != true {
		t.Fatalf("automatic snapshot + tail != live: %v", sn)
	}
	st, err := root.Logical().Read("sys/ledger/replay/verify")
	must(err)
	if st.Data["running"] != false || st.Data["last"] == nil {
		t.Fatalf("verify status = %v", st.Data)
	}
}

func verifyOK(t *testing.T, c *vault.Client, from string) map[string]any {
	t.Helper()
	s, err := c.Logical().Write("sys/ledger/replay/verify", nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	d := s.Data
	if d["ok"] != true {
		t.Fatalf("verify not ok: %v", d)
	}
	if got, _ := d["from"].(string); len(got) < len(from) || got[:len(from)] != from {
		t.Fatalf("verify rebuilt from %q, want %q…", got, from)
	}
	views, _ := d["views"].([]any)
	names := map[string]bool{}
	for _, v := range views {
		m := v.(map[string]any)
		if m["match"] != true {
			t.Fatalf("view %v differs", m)
		}
		names[m["name"].(string)] = true
	}
	for _, want := range []string{"mount", "policy", "token", "kv", "lease", "seal"} {
		if !names[want] {
			t.Fatalf("verify did not compare view %q: %v", want, names)
		}
	}
	if ev, _ := d["events"].(json.Number).Int64(); ev == 0 && from == "genesis" {
		t.Fatalf("verify replayed no events: %v", d)
	}
	return d
}

var _ = http.StatusOK
