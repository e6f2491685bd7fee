package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultAPIKVv2 drives KV v2 at secret/ through client.KVv2 and client.Logical, asserting what
// Vault (vault-plugin-secrets-kv) answers. Subtests run in order on one server and build on
// each other's writes.
func TestVaultAPIKVv2(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	kv := root.KVv2("secret")
	ctx := context.Background()

	put := func(t *testing.T, path string, data map[string]any, opts ...vault.KVOption) *vault.KVSecret {
		t.Helper()
		sec, err := kv.Put(ctx, path, data, opts...)
		if err != nil {
			t.Fatalf("put %s: %v", path, err)
		}
		if sec.VersionMetadata == nil {
			t.Fatalf("put %s: no version metadata in the answer", path)
		}
		return sec
	}
	get := func(t *testing.T, path string) *vault.KVSecret {
		t.Helper()
		sec, err := kv.Get(ctx, path)
		if err != nil {
			t.Fatalf("get %s: %v", path, err)
		}
		return sec
	}
	getVersion := func(t *testing.T, path string, v int) *vault.KVSecret {
		t.Helper()
		sec, err := kv.GetVersion(ctx, path, v)
		if err != nil {
			t.Fatalf("get %s version %d: %v", path, v, err)
		}
		return sec
	}
	metadata := func(t *testing.T, path string) *vault.KVMetadata {
		t.Helper()
		md, err := kv.GetMetadata(ctx, path)
		if err != nil {
			t.Fatalf("metadata %s: %v", path, err)
		}
		return md
	}

	t.Run("put get versions", func(t *testing.T) {
		v1 := put(t, "app/config", map[string]any{"user": "u", "pass": "p1"})
		if v1.VersionMetadata.Version != 1 || v1.VersionMetadata.CreatedTime.IsZero() || !v1.VersionMetadata.DeletionTime.IsZero() || v1.VersionMetadata.Destroyed {
			t.Fatalf("first put: %+v", v1.VersionMetadata)
		}
		// The write answer carries deletion_time as "" (not null) and custom_metadata. (KVv2.Put
		// rewrites "" in Raw, so look at the wire.)
		w := raw(t, s.URL, http.MethodPost, "secret/data/wire", strings.NewReader(`{"data":{"k":"v"}}`), tokenHeader(s.RootToken))
		if w.Status != http.StatusOK {
			t.Fatalf("raw write: %d %s", w.Status, w.Body)
		}
		wd, _ := w.json(t)["data"].(map[string]any)
		if dt, ok := wd["deletion_time"]; !ok || dt != "" {
			t.Fatalf("put answer deletion_time = %#v (present %v), want \"\": %s", dt, ok, w.Body)
		}
		for _, f := range []string{"version", "created_time", "destroyed", "custom_metadata"} {
			if _, ok := wd[f]; !ok {
				t.Errorf("put answer has no %q: %s", f, w.Body)
			}
		}
		if v2 := put(t, "app/config", map[string]any{"pass": "p2"}); v2.VersionMetadata.Version != 2 {
			t.Fatalf("second put version = %d", v2.VersionMetadata.Version)
		}
		latest := get(t, "app/config")
		if !reflect.DeepEqual(latest.Data, map[string]any{"pass": "p2"}) || latest.VersionMetadata.Version != 2 {
			t.Fatalf("get latest = %v %+v", latest.Data, latest.VersionMetadata)
		}
		if !latest.VersionMetadata.DeletionTime.IsZero() || latest.VersionMetadata.Destroyed {
			t.Fatalf("latest version metadata: %+v", latest.VersionMetadata)
		}
		old := getVersion(t, "app/config", 1)
		if !reflect.DeepEqual(old.Data, map[string]any{"user": "u", "pass": "p1"}) || old.VersionMetadata.Version != 1 {
			t.Fatalf("get version 1 = %v %+v", old.Data, old.VersionMetadata)
		}
		list, err := kv.GetVersionsAsList(ctx, "app/config")
		if err != nil || len(list) != 2 || list[0].Version != 1 || list[1].Version != 2 {
			t.Fatalf("versions as list = %+v %v", list, err)
		}
		// Raw read: data.metadata.deletion_time is "" — Vault Agent reads null as deleted.
		sec, err := root.Logical().Read("secret/data/app/config")
		if err != nil || sec == nil {
			t.Fatalf("logical read: %v %v", sec, err)
		}
		md, _ := sec.Data["metadata"].(map[string]any)
		if dt, ok := md["deletion_time"]; !ok || dt != "" {
			t.Fatalf("data.metadata.deletion_time = %#v (present %v), want \"\"", dt, ok)
		}
		for _, f := range []string{"version", "created_time", "destroyed", "custom_metadata"} {
			if _, ok := md[f]; !ok {
				t.Errorf("data.metadata has no %q: %v", f, md)
			}
		}
		// ?version= through ReadWithData.
		sec, err = root.Logical().ReadWithData("secret/data/app/config", map[string][]string{"version": {"1"}})
		if err != nil || sec == nil {
			t.Fatalf("read ?version=1: %v %v", sec, err)
		}
		if d, _ := sec.Data["data"].(map[string]any); d["pass"] != "p1" {
			t.Fatalf("read ?version=1 data = %v", sec.Data["data"])
		}
	})

	t.Run("missing is ErrSecretNotFound", func(t *testing.T) {
		cases := []struct {
			name string
			call func() error
		}{
			{"Get", func() error { _, err := kv.Get(ctx, "no/such"); return err }},
			{"GetVersion of a missing path", func() error { _, err := kv.GetVersion(ctx, "no/such", 1); return err }},
			{"GetVersion beyond current", func() error { _, err := kv.GetVersion(ctx, "app/config", 99); return err }},
			{"GetMetadata", func() error { _, err := kv.GetMetadata(ctx, "no/such"); return err }},
			{"GetVersionsAsList", func() error { _, err := kv.GetVersionsAsList(ctx, "no/such"); return err }},
			{"Patch", func() error { _, err := kv.Patch(ctx, "no/such", map[string]any{"a": "b"}); return err }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if err := tc.call(); !isNotFound(err) {
					t.Fatalf("got %v, want api.ErrSecretNotFound", err)
				}
			})
		}
		// Raw: a missing secret is a bare 404 with {"errors":[]}.
		r := raw(t, s.URL, http.MethodGet, "secret/data/no/such", nil, tokenHeader(s.RootToken))
		if r.Status != http.StatusNotFound || len(r.errs(t)) != 0 {
			t.Fatalf("raw read of a missing secret: %d %s", r.Status, r.Body)
		}
	})

	t.Run("patch", func(t *testing.T) {
		p, err := kv.Patch(ctx, "app/config", map[string]any{"extra": "x"})
		if err != nil || p.VersionMetadata == nil || p.VersionMetadata.Version != 3 {
			t.Fatalf("patch: %+v %v", p, err)
		}
		if got := get(t, "app/config").Data; !reflect.DeepEqual(got, map[string]any{"pass": "p2", "extra": "x"}) {
			t.Fatalf("after patch = %v", got)
		}
		// JSON merge patch: null removes a key.
		if _, err := kv.Patch(ctx, "app/config", map[string]any{"extra": nil}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, "app/config"); !reflect.DeepEqual(got.Data, map[string]any{"pass": "p2"}) || got.VersionMetadata.Version != 4 {
			t.Fatalf("after null patch = %v v%d", got.Data, got.VersionMetadata.Version)
		}
		_, err = kv.Patch(ctx, "app/config", map[string]any{"a": "b"}, vault.WithCheckAndSet(1))
		respErr(t, err, http.StatusBadRequest, "check-and-set parameter did not match the current version")
		// The read-then-write fallback the client offers works too.
		if _, err := kv.Patch(ctx, "app/config", map[string]any{"rw": "1"}, vault.WithMergeMethod("rw")); err != nil {
			t.Fatalf("rw patch: %v", err)
		}
		if got := get(t, "app/config"); got.Data["rw"] != "1" || got.VersionMetadata.Version != 5 {
			t.Fatalf("after rw patch = %v v%d", got.Data, got.VersionMetadata.Version)
		}
	})

	t.Run("soft-deleted latest", func(t *testing.T) {
		if err := kv.Delete(ctx, "app/config"); err != nil {
			t.Fatal(err)
		}
		// Vault answers 404 with the version metadata as data; the client returns no error, a
		// nil Data and the deletion time.
		sec, err := kv.Get(ctx, "app/config")
		if err != nil {
			t.Fatalf("get of a soft-deleted latest version: %v (Vault's client returns no error)", err)
		}
		if sec.Data != nil || sec.VersionMetadata == nil || sec.VersionMetadata.DeletionTime.IsZero() || sec.VersionMetadata.Version != 5 {
			t.Fatalf("get of a soft-deleted latest = data %v metadata %+v", sec.Data, sec.VersionMetadata)
		}
		r := raw(t, s.URL, http.MethodGet, "secret/data/app/config", nil, tokenHeader(s.RootToken))
		if r.Status != http.StatusNotFound {
			t.Fatalf("raw read of a soft-deleted version: status %d, want 404", r.Status)
		}
		body := r.json(t)
		data, _ := body["data"].(map[string]any)
		if v, ok := data["data"]; !ok || v != nil {
			t.Fatalf("404 body data.data = %#v (present %v), want null: %s", v, ok, r.Body)
		}
		md, _ := data["metadata"].(map[string]any)
		if dt, _ := md["deletion_time"].(string); dt == "" {
			t.Fatalf("404 body data.metadata.deletion_time = %#v, want a time: %s", md["deletion_time"], r.Body)
		}
		if m := metadata(t, "app/config"); m.Versions["5"].DeletionTime.IsZero() || m.CurrentVersion != 5 {
			t.Fatalf("metadata after delete: current %d, v5 %+v", m.CurrentVersion, m.Versions["5"])
		}
		// Patch of a deleted latest version is a 404 → ErrSecretNotFound.
		if _, err := kv.Patch(ctx, "app/config", map[string]any{"a": "b"}); !isNotFound(err) {
			t.Fatalf("patch of a deleted latest: %v, want ErrSecretNotFound", err)
		}
		if err := kv.Undelete(ctx, "app/config", []int{5}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, "app/config"); got.Data["pass"] != "p2" || !got.VersionMetadata.DeletionTime.IsZero() {
			t.Fatalf("after undelete = %v %+v", got.Data, got.VersionMetadata)
		}
	})

	t.Run("delete versions undelete destroy", func(t *testing.T) {
		if err := kv.DeleteVersions(ctx, "app/config", []int{1}); err != nil {
			t.Fatal(err)
		}
		if v := getVersion(t, "app/config", 1); v.Data != nil || v.VersionMetadata.DeletionTime.IsZero() {
			t.Fatalf("version 1 after delete: %v %+v", v.Data, v.VersionMetadata)
		}
		if got := get(t, "app/config"); got.Data == nil {
			t.Fatal("deleting version 1 hid the latest version")
		}
		if err := kv.Undelete(ctx, "app/config", []int{1}); err != nil {
			t.Fatal(err)
		}
		if v := getVersion(t, "app/config", 1); v.Data["pass"] != "p1" {
			t.Fatalf("version 1 after undelete: %v", v.Data)
		}
		if err := kv.Destroy(ctx, "app/config", []int{1}); err != nil {
			t.Fatal(err)
		}
		v := getVersion(t, "app/config", 1)
		if v.Data != nil || !v.VersionMetadata.Destroyed {
			t.Fatalf("version 1 after destroy: %v %+v", v.Data, v.VersionMetadata)
		}
		if m := metadata(t, "app/config"); !m.Versions["1"].Destroyed {
			t.Fatalf("metadata version 1 after destroy: %+v", m.Versions["1"])
		}
		// Undelete cannot bring back a destroyed version.
		if err := kv.Undelete(ctx, "app/config", []int{1}); err != nil {
			t.Fatal(err)
		}
		if v := getVersion(t, "app/config", 1); v.Data != nil {
			t.Fatalf("destroyed version 1 came back: %v", v.Data)
		}
		// Destroying a path that does not exist is a no-op, as Vault's is.
		if err := kv.Destroy(ctx, "no/such", []int{1}); err != nil {
			t.Fatalf("destroy of a missing path: %v", err)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		rb, err := kv.Rollback(ctx, "app/config", 3)
		if err != nil {
			t.Fatalf("rollback to 3: %v", err)
		}
		if rb.VersionMetadata.Version != 6 {
			t.Fatalf("rollback wrote version %d, want 6", rb.VersionMetadata.Version)
		}
		if got := get(t, "app/config"); !reflect.DeepEqual(got.Data, map[string]any{"pass": "p2", "extra": "x"}) {
			t.Fatalf("after rollback = %v", got.Data)
		}
		// A destroyed version reads as 404 with metadata and no data; the client refuses
		// ("no secret found") and writes nothing.
		if _, err := kv.Rollback(ctx, "app/config", 1); err == nil || !strings.Contains(err.Error(), "invalid rollback version 1") {
			t.Fatalf("rollback to a destroyed version: %v", err)
		}
		if m := metadata(t, "app/config"); m.CurrentVersion != 6 {
			t.Fatalf("a refused rollback wrote version %d", m.CurrentVersion)
		}
	})

	t.Run("metadata put patch", func(t *testing.T) {
		in := vault.KVMetadataPutInput{MaxVersions: 5, DeleteVersionAfter: time.Hour, CustomMetadata: map[string]any{"owner": "team-a"}}
		if err := kv.PutMetadata(ctx, "meta/x", in); err != nil {
			t.Fatal(err)
		}
		m := metadata(t, "meta/x")
		if m.MaxVersions != 5 || m.DeleteVersionAfter != time.Hour || m.CASRequired || m.CurrentVersion != 0 ||
			!reflect.DeepEqual(m.CustomMetadata, map[string]any{"owner": "team-a"}) {
			t.Fatalf("metadata after put: %+v", m)
		}
		w := put(t, "meta/x", map[string]any{"k": "v"})
		if !reflect.DeepEqual(w.CustomMetadata, map[string]any{"owner": "team-a"}) {
			t.Fatalf("put answer custom_metadata = %v", w.CustomMetadata)
		}
		// delete_version_after sets the version's deletion_time ahead of its creation.
		if d := w.VersionMetadata.DeletionTime.Sub(w.VersionMetadata.CreatedTime); d < 59*time.Minute || d > 61*time.Minute {
			t.Fatalf("deletion_time - created_time = %s, want 1h", d)
		}
		got := get(t, "meta/x")
		if got.Data["k"] != "v" || !reflect.DeepEqual(got.CustomMetadata, map[string]any{"owner": "team-a"}) {
			t.Fatalf("get with a future deletion_time = %v %v", got.Data, got.CustomMetadata)
		}
		// Patch merges: custom_metadata keys are added, other fields stay.
		if err := kv.PatchMetadata(ctx, "meta/x", vault.KVMetadataPatchInput{CustomMetadata: map[string]any{"env": "prod"}}); err != nil {
			t.Fatal(err)
		}
		m = metadata(t, "meta/x")
		if m.MaxVersions != 5 || m.DeleteVersionAfter != time.Hour || m.CurrentVersion != 1 ||
			!reflect.DeepEqual(m.CustomMetadata, map[string]any{"owner": "team-a", "env": "prod"}) {
			t.Fatalf("metadata after patch: %+v", m)
		}
		yes := true
		if err := kv.PatchMetadata(ctx, "meta/x", vault.KVMetadataPatchInput{CASRequired: &yes}); err != nil {
			t.Fatal(err)
		}
		if m = metadata(t, "meta/x"); !m.CASRequired || m.MaxVersions != 5 {
			t.Fatalf("metadata after cas patch: %+v", m)
		}
		// Put replaces: fields left zero go back to zero.
		if err := kv.PutMetadata(ctx, "meta/x", vault.KVMetadataPutInput{MaxVersions: 3}); err != nil {
			t.Fatal(err)
		}
		m = metadata(t, "meta/x")
		if m.MaxVersions != 3 || m.CASRequired || m.DeleteVersionAfter != 0 || len(m.CustomMetadata) != 0 || m.CurrentVersion != 1 {
			t.Fatalf("metadata after replacing put: %+v", m)
		}
	})

	t.Run("delete_version_after expires the version", func(t *testing.T) {
		if err := kv.PutMetadata(ctx, "ephemeral", vault.KVMetadataPutInput{DeleteVersionAfter: time.Second}); err != nil {
			t.Fatal(err)
		}
		w := put(t, "ephemeral", map[string]any{"k": "v"})
		if w.VersionMetadata.DeletionTime.IsZero() {
			t.Fatal("a version under delete_version_after has no deletion_time")
		}
		if got := get(t, "ephemeral"); got.Data["k"] != "v" {
			t.Fatalf("read before expiry = %v", got.Data)
		}
		eventually(t, 5*time.Second, "version hidden after delete_version_after", func() bool {
			sec, err := kv.Get(ctx, "ephemeral")
			return err == nil && sec.Data == nil && !sec.VersionMetadata.DeletionTime.IsZero()
		})
	})

	t.Run("max_versions trimming", func(t *testing.T) {
		cases := []struct {
			name string
			max  int // 0: the engine default, which Vault sets at 10
		}{
			{"key max_versions 10", 10},
			{"engine default", 0},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				path := "trim/" + strings.ReplaceAll(tc.name, " ", "-")
				if tc.max > 0 {
					if err := kv.PutMetadata(ctx, path, vault.KVMetadataPutInput{MaxVersions: tc.max}); err != nil {
						t.Fatal(err)
					}
				}
				for i := 1; i <= 12; i++ {
					put(t, path, map[string]any{"n": fmt.Sprint(i)})
				}
				m := metadata(t, path)
				if m.CurrentVersion != 12 || m.OldestVersion != 3 || len(m.Versions) != 10 {
					t.Fatalf("current %d oldest %d, %d versions; want 12, 3, 10", m.CurrentVersion, m.OldestVersion, len(m.Versions))
				}
				for _, v := range []int{1, 2} {
					if _, err := kv.GetVersion(ctx, path, v); !isNotFound(err) {
						t.Errorf("trimmed version %d: %v, want ErrSecretNotFound", v, err)
					}
				}
				if v := getVersion(t, path, 3); v.Data["n"] != "3" {
					t.Fatalf("oldest kept version = %v", v.Data)
				}
			})
		}
	})

	t.Run("check-and-set", func(t *testing.T) {
		cases := []struct {
			name    string
			cas     int
			wantErr string
			wantVer int
		}{
			{"cas 0 creates a new key", 0, "", 1},
			{"cas 0 on an existing key", 0, "check-and-set parameter did not match the current version", 0},
			{"cas = current", 1, "", 2},
			{"cas behind", 1, "check-and-set parameter did not match the current version", 0},
			{"cas ahead", 7, "check-and-set parameter did not match the current version", 0},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				sec, err := kv.Put(ctx, "cas/x", map[string]any{"v": tc.name}, vault.WithCheckAndSet(tc.cas))
				if tc.wantErr != "" {
					respErr(t, err, http.StatusBadRequest, tc.wantErr)
					return
				}
				if err != nil || sec.VersionMetadata.Version != tc.wantVer {
					t.Fatalf("put: %+v %v", sec, err)
				}
			})
		}
		if got := get(t, "cas/x"); got.Data["v"] != "cas = current" {
			t.Fatalf("a refused CAS write changed the secret: %v", got.Data)
		}
	})

	t.Run("cas_required", func(t *testing.T) {
		if err := kv.PutMetadata(ctx, "casreq", vault.KVMetadataPutInput{CASRequired: true}); err != nil {
			t.Fatal(err)
		}
		_, err := kv.Put(ctx, "casreq", map[string]any{"a": "b"})
		respErr(t, err, http.StatusBadRequest, "check-and-set parameter required for this call")
		if _, err := kv.Put(ctx, "casreq", map[string]any{"a": "b"}, vault.WithCheckAndSet(0)); err != nil {
			t.Fatalf("put with cas under cas_required: %v", err)
		}
		// Engine-wide, on a mount of its own.
		if err := root.Sys().Mount("kvcas", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("kvcas/config", map[string]any{"cas_required": true, "max_versions": 4}); err != nil {
			t.Fatal(err)
		}
		cfg, err := root.Logical().Read("kvcas/config")
		if err != nil || cfg == nil || cfg.Data["cas_required"] != true || num(t, cfg.Data["max_versions"]) != 4 {
			t.Fatalf("kvcas/config = %+v %v", cfg, err)
		}
		if _, ok := cfg.Data["delete_version_after"]; !ok {
			t.Errorf("config has no delete_version_after: %v", cfg.Data)
		}
		_, err = root.KVv2("kvcas").Put(ctx, "x", map[string]any{"a": "b"})
		respErr(t, err, http.StatusBadRequest, "check-and-set parameter required for this call")
	})

	t.Run("list metadata", func(t *testing.T) {
		for _, p := range []string{"list/a", "list/b/c", "list/b/d"} {
			put(t, p, map[string]any{"x": "y"})
		}
		cases := []struct {
			path string
			want []string
		}{
			{"secret/metadata/list/", []string{"a", "b/"}},
			{"secret/metadata/list", []string{"a", "b/"}},
			{"secret/metadata/list/b/", []string{"c", "d"}},
		}
		for _, tc := range cases {
			t.Run(tc.path, func(t *testing.T) {
				if got := listKeys(t, root, tc.path); !sameStrings(got, tc.want) {
					t.Fatalf("keys = %v, want %v", got, tc.want)
				}
			})
		}
		top := listKeys(t, root, "secret/metadata/")
		for _, want := range []string{"app/", "list/", "casreq", "ephemeral"} {
			if !contains(top, want) {
				t.Errorf("top-level list %v lacks %q", top, want)
			}
		}
		// A folder with nothing in it: the client turns Vault's 404 into a nil secret.
		if got, err := root.Logical().List("secret/metadata/empty/"); err != nil || got != nil {
			t.Fatalf("list of an empty folder = %+v %v, want nil, nil", got, err)
		}
	})

	t.Run("subkeys", func(t *testing.T) {
		put(t, "sub/x", map[string]any{"a": "1", "b": map[string]any{"c": "2", "d": map[string]any{"e": "3"}}})
		sec, err := root.Logical().Read("secret/subkeys/sub/x")
		if err != nil || sec == nil {
			t.Fatalf("subkeys: %v %v", sec, err)
		}
		want := map[string]any{"a": nil, "b": map[string]any{"c": nil, "d": map[string]any{"e": nil}}}
		if !reflect.DeepEqual(sec.Data["subkeys"], want) {
			t.Fatalf("subkeys = %#v, want %#v", sec.Data["subkeys"], want)
		}
		if md, _ := sec.Data["metadata"].(map[string]any); md == nil || num(t, md["version"]) != 1 {
			t.Fatalf("subkeys metadata = %v", sec.Data["metadata"])
		}
		sec, err = root.Logical().ReadWithData("secret/subkeys/sub/x", map[string][]string{"depth": {"1"}})
		if err != nil || sec == nil || !reflect.DeepEqual(sec.Data["subkeys"], map[string]any{"a": nil, "b": nil}) {
			t.Fatalf("subkeys depth=1 = %v %v", sec, err)
		}
		if sec, err := root.Logical().Read("secret/subkeys/no/such"); err != nil || sec != nil {
			t.Fatalf("subkeys of a missing secret = %v %v, want nil, nil", sec, err)
		}
	})

	t.Run("delete metadata", func(t *testing.T) {
		if err := kv.DeleteMetadata(ctx, "app/config"); err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Get(ctx, "app/config"); !isNotFound(err) {
			t.Fatalf("get after delete metadata: %v", err)
		}
		if _, err := kv.GetMetadata(ctx, "app/config"); !isNotFound(err) {
			t.Fatalf("metadata after delete metadata: %v", err)
		}
		if _, err := kv.GetVersion(ctx, "app/config", 2); !isNotFound(err) {
			t.Fatalf("old version after delete metadata: %v", err)
		}
		if top := listKeys(t, root, "secret/metadata/"); contains(top, "app/") {
			t.Fatalf("list still shows app/: %v", top)
		}
		// A fresh write starts again at version 1.
		if w := put(t, "app/config", map[string]any{"a": "b"}); w.VersionMetadata.Version != 1 {
			t.Fatalf("write after delete metadata is version %d", w.VersionMetadata.Version)
		}
	})
}

// TestVaultAPIKVv1 mounts KV v1 and drives it through Logical and KVv1.
func TestVaultAPIKVv1(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	ctx := context.Background()
	if err := root.Sys().Mount("kv1", &vault.MountInput{Type: "kv"}); err != nil {
		t.Fatal(err)
	}
	// A KV v1 write has nothing to say: 204, which the client returns as nil, nil.
	for _, p := range []string{"kv1/foo", "kv1/dir/bar"} {
		sec, err := root.Logical().Write(p, map[string]any{"a": "b", "n": 1})
		if err != nil || sec != nil {
			t.Fatalf("write %s = %+v %v, want nil, nil", p, sec, err)
		}
	}
	sec, err := root.Logical().Read("kv1/foo")
	if err != nil || sec == nil || sec.Data["a"] != "b" || num(t, sec.Data["n"]) != 1 {
		t.Fatalf("read kv1/foo = %+v %v", sec, err)
	}
	if _, ok := sec.Data["metadata"]; ok {
		t.Fatalf("a KV v1 read carries v2 metadata: %v", sec.Data)
	}
	kv1, err := root.KVv1("kv1").Get(ctx, "dir/bar")
	if err != nil || kv1.Data["a"] != "b" {
		t.Fatalf("KVv1 get = %+v %v", kv1, err)
	}
	if got := listKeys(t, root, "kv1/"); !sameStrings(got, []string{"dir/", "foo"}) {
		t.Fatalf("list kv1/ = %v", got)
	}
	if got := listKeys(t, root, "kv1/dir"); !sameStrings(got, []string{"bar"}) {
		t.Fatalf("list kv1/dir = %v", got)
	}
	if _, err := root.Logical().Delete("kv1/foo"); err != nil {
		t.Fatal(err)
	}
	if sec, err := root.Logical().Read("kv1/foo"); err != nil || sec != nil {
		t.Fatalf("read after delete = %+v %v, want nil, nil", sec, err)
	}
	if _, err := root.KVv1("kv1").Get(ctx, "foo"); !isNotFound(err) {
		t.Fatalf("KVv1 get after delete: %v", err)
	}
	// A v1 mount has no data/ or metadata/ paths: "kv1/data/dir/bar" is just a missing key.
	if sec, err := root.Logical().Read("kv1/data/dir/bar"); err != nil || sec != nil {
		t.Fatalf("read kv1/data/dir/bar = %+v %v, want nil, nil", sec, err)
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}
