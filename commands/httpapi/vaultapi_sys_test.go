package httpapi_test

import (
	"context"
	"net/http"
	"regexp"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestVaultAPISysMounts drives sys/mounts and sys/auth through client.Sys.
func TestVaultAPISysMounts(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	sys := root.Sys()
	ctx := context.Background()

	t.Run("list mounts", func(t *testing.T) {
		mounts, err := sys.ListMounts()
		if err != nil {
			t.Fatal(err)
		}
		sec := mounts["secret/"]
		if sec == nil || sec.Type != "kv" || sec.Options["version"] != "2" || sec.UUID == "" || sec.Accessor == "" {
			t.Fatalf("secret/ = %+v", sec)
		}
		if m := mounts["sys/"]; m == nil || m.Type != "system" {
			t.Fatalf("sys/ = %+v", m)
		}
		one, err := sys.GetMount("secret")
		if err != nil || one.Type != "kv" || one.Options["version"] != "2" || one.UUID != sec.UUID {
			t.Fatalf("GetMount(secret) = %+v %v", one, err)
		}
	})

	t.Run("mount errors", func(t *testing.T) {
		cases := []struct {
			name, path string
			in         vault.MountInput
			status     int
			contains   string
		}{
			{"existing path", "secret", vault.MountInput{Type: "kv"}, 400, "path is already in use at secret/"},
			{"nested under a mount", "secret/inner", vault.MountInput{Type: "kv"}, 400, "path is already in use at secret/"},
			{"unknown type", "nope", vault.MountInput{Type: "no-such-engine"}, 400, "plugin not found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				respErr(t, sys.Mount(tc.path, &tc.in), tc.status, tc.contains)
			})
		}
	})

	t.Run("tune and mount config", func(t *testing.T) {
		cfg, err := sys.MountConfig("secret")
		if err != nil {
			t.Fatal(err)
		}
		// Unset TTLs read as the system defaults (768h), as in Vault.
		if cfg.DefaultLeaseTTL != 2764800 || cfg.MaxLeaseTTL != 2764800 {
			t.Fatalf("default mount config = %+v", cfg)
		}
		if err := sys.TuneMount("secret", vault.MountConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "2h"}); err != nil {
			t.Fatalf("tune: %v", err)
		}
		cfg, err = sys.MountConfig("secret")
		if err != nil || cfg.DefaultLeaseTTL != 3600 || cfg.MaxLeaseTTL != 7200 {
			t.Fatalf("after tune = %+v %v", cfg, err)
		}
		mounts, err := sys.ListMounts()
		if err != nil || mounts["secret/"].Config.DefaultLeaseTTL != 3600 || mounts["secret/"].Config.MaxLeaseTTL != 7200 {
			t.Fatalf("list after tune: %+v %v", mounts["secret/"], err)
		}
		// A tune that leaves a field empty changes nothing of it.
		desc := "the lesson's kv"
		if err := sys.TuneMount("secret", vault.MountConfigInput{Description: &desc}); err != nil {
			t.Fatalf("tune description: %v", err)
		}
		// Vault (handleTuneWriteCommon): default_lease_ttl "" keeps the current value; the client
		// always sends both TTL fields.
		if cfg, err = sys.MountConfig("secret"); err != nil || cfg.DefaultLeaseTTL != 3600 || cfg.MaxLeaseTTL != 7200 {
			t.Errorf("after a description-only tune: default %d max %d (%v), want 3600 7200 unchanged", cfg.DefaultLeaseTTL, cfg.MaxLeaseTTL, err)
			if err := sys.TuneMount("secret", vault.MountConfigInput{DefaultLeaseTTL: "1h", MaxLeaseTTL: "2h"}); err != nil {
				t.Fatal(err)
			}
		}
		if m, _ := sys.GetMount("secret"); m == nil || m.Description != desc {
			t.Fatalf("description after tune = %+v", m)
		}
		err = sys.TuneMount("secret", vault.MountConfigInput{DefaultLeaseTTL: "3h"})
		respErr(t, err, http.StatusBadRequest, "")
		_, err = sys.MountConfig("no-such-mount")
		respErr(t, err, http.StatusBadRequest, "")
	})

	t.Run("unmount and remount loses the data", func(t *testing.T) {
		if err := sys.Mount("scratch", &vault.MountInput{Type: "kv-v2", Description: "temporary"}); err != nil {
			t.Fatal(err)
		}
		mounts, _ := sys.ListMounts()
		if m := mounts["scratch/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" || m.Description != "temporary" {
			t.Fatalf("scratch/ = %+v", m)
		}
		if _, err := root.KVv2("scratch").Put(ctx, "x", map[string]any{"a": "b"}); err != nil {
			t.Fatal(err)
		}
		if err := sys.Unmount("scratch"); err != nil {
			t.Fatal(err)
		}
		mounts, _ = sys.ListMounts()
		if mounts["scratch/"] != nil {
			t.Fatal("scratch/ still listed after unmount")
		}
		// Nothing routes there any more (the client turns a 404 read into nil, so look at the wire).
		if r := raw(t, s.URL, http.MethodGet, "scratch/data/x", nil, tokenHeader(s.RootToken)); r.Status != http.StatusNotFound {
			t.Fatalf("read under an unmounted path: %d %s", r.Status, r.Body)
		}
		// Unmounting what is not mounted succeeds, as in Vault.
		if err := sys.Unmount("scratch"); err != nil {
			t.Fatalf("second unmount: %v", err)
		}
		if err := sys.Mount("scratch", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.KVv2("scratch").Get(ctx, "x"); !isNotFound(err) {
			t.Fatalf("read after remount: %v, want ErrSecretNotFound", err)
		}
		if keys := listKeys(t, root, "scratch/metadata/"); len(keys) != 0 {
			t.Fatalf("list after remount = %v", keys)
		}
	})

	t.Run("auth methods", func(t *testing.T) {
		auths, err := sys.ListAuth()
		if err != nil {
			t.Fatal(err)
		}
		if a := auths["token/"]; a == nil || a.Type != "token" || a.Accessor == "" {
			t.Fatalf("token/ = %+v", a)
		}
		cases := []struct {
			name, path, typ string
			contains        string
		}{
			// Vault: the token store is a singleton (vault/auth.go enableCredential).
			{"token at another path", "token2", "token", "token credential backend cannot be instantiated"},
			{"unknown type", "nope", "no-such-method", "plugin not found"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := sys.EnableAuthWithOptions(tc.path, &vault.EnableAuthOptions{Type: tc.typ})
				respErr(t, err, http.StatusBadRequest, tc.contains)
				auths, _ := sys.ListAuth()
				if auths[tc.path+"/"] != nil {
					t.Fatalf("a refused enable left %s/ listed", tc.path)
				}
			})
		}
		respErr(t, sys.DisableAuth("token"), http.StatusBadRequest, "cannot be disabled")
	})

	t.Run("ui mounts", func(t *testing.T) {
		sec, err := root.Logical().Read("sys/internal/ui/mounts/secret/foo")
		if err != nil || sec == nil {
			t.Fatalf("ui mount: %v %v", sec, err)
		}
		opts, _ := sec.Data["options"].(map[string]any)
		if sec.Data["path"] != "secret/" || sec.Data["type"] != "kv" || opts["version"] != "2" {
			t.Fatalf("ui mount = %v", sec.Data)
		}
		if err := sys.Mount("kv1", &vault.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
			t.Fatal(err)
		}
		sec, err = root.Logical().Read("sys/internal/ui/mounts/kv1/a/b")
		if err != nil || sec == nil || sec.Data["path"] != "kv1/" {
			t.Fatalf("ui mount kv1 = %+v %v", sec, err)
		}
		if opts, _ := sec.Data["options"].(map[string]any); opts["version"] != "1" {
			t.Fatalf("ui mount kv1 options = %v", sec.Data["options"])
		}
		// Vault (logical_system.go pathInternalUIMountRead): no mount → 403 with the preflight
		// message, so the endpoint cannot be used to enumerate mounts.
		_, err = root.Logical().Read("sys/internal/ui/mounts/nomount/foo")
		if err == nil {
			r := raw(t, s.URL, http.MethodGet, "sys/internal/ui/mounts/nomount/foo", nil, tokenHeader(s.RootToken))
			t.Fatalf("ui mount of a path with no mount: %d %s, want Vault's 403", r.Status, r.Body)
		}
		respErr(t, err, http.StatusForbidden, `preflight capability check returned 403, please ensure client's policies grant access to path "nomount/foo/"`)
	})
}

// TestVaultAPISysPolicies drives sys/policies/acl and the capabilities endpoints.
func TestVaultAPISysPolicies(t *testing.T) {
	s := startServer(t)
	root := s.Client(t, s.RootToken)
	sys := root.Sys()

	t.Run("put get list delete", func(t *testing.T) {
		text := `path "secret/data/p1/*" { capabilities = ["read"] }`
		putPolicy(t, root, "p1", text)
		got, err := sys.GetPolicy("p1")
		if err != nil || got != text {
			t.Fatalf("get p1 = %q %v", got, err)
		}
		// Vault lower-cases policy names.
		putPolicy(t, root, "MixedCase", text)
		names, err := sys.ListPolicies()
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"default", "root", "p1", "mixedcase"} {
			if !contains(names, want) {
				t.Errorf("policies %v lack %q", names, want)
			}
		}
		if def, err := sys.GetPolicy("default"); err != nil || !strings.Contains(def, "auth/token/lookup-self") {
			t.Fatalf("default policy text = %q %v", def, err)
		}
		if err := sys.DeletePolicy("p1"); err != nil {
			t.Fatal(err)
		}
		// The client returns "" with no error for Vault's 404.
		if got, err := sys.GetPolicy("p1"); err != nil || got != "" {
			t.Fatalf("get after delete = %q %v", got, err)
		}
		names, _ = sys.ListPolicies()
		if contains(names, "p1") {
			t.Fatalf("p1 still listed: %v", names)
		}
		// Deleting a missing policy succeeds.
		if err := sys.DeletePolicy("p1"); err != nil {
			t.Fatalf("second delete: %v", err)
		}
		respErr(t, sys.DeletePolicy("default"), http.StatusBadRequest, "cannot delete")
		respErr(t, sys.DeletePolicy("root"), http.StatusBadRequest, "cannot delete")
		respErr(t, sys.PutPolicy("root", text), http.StatusBadRequest, "root policy")
	})

	t.Run("bad policies", func(t *testing.T) {
		cases := []struct {
			name, text string
			want       *regexp.Regexp
		}{
			// Vault: `failed to parse policy: At 3:18: …` — the message names the line.
			{"syntax error on line 3", "path \"secret/a\" {\n  capabilities = [\"read\"]\n  capabilities = = [\"list\"]\n}\n", regexp.MustCompile(`(At 3:|line 3)`)},
			{"unclosed block", "path \"secret/a\" {\n  capabilities = [\"read\"]\n", regexp.MustCompile(`(At \d+:|line \d+)`)},
			// Vault: `path "secret/a": invalid capability "fly"`.
			{"unknown capability", "path \"secret/a\" {\n  capabilities = [\"read\", \"fly\"]\n}\n", regexp.MustCompile(`"fly"`)},
			{"empty", "   ", regexp.MustCompile(`.`)},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				err := sys.PutPolicy("bad", tc.text)
				respErr(t, err, http.StatusBadRequest, "")
				if msg := err.(*vault.ResponseError).Errors; len(msg) == 0 || !tc.want.MatchString(strings.Join(msg, " ")) {
					t.Fatalf("errors %q do not match %s", msg, tc.want)
				}
				if got, _ := sys.GetPolicy("bad"); got != "" {
					t.Fatalf("a refused policy was stored: %q", got)
				}
			})
		}
	})

	t.Run("capabilities", func(t *testing.T) {
		putPolicy(t, root, "myapp", `path "secret/data/myapp/*" { capabilities = ["read", "list"] }`)
		tok := newToken(t, root, &vault.TokenCreateRequest{Policies: []string{"myapp"}})
		user := s.Client(t, tok.ClientToken)
		cases := []struct {
			name string
			call func() ([]string, error)
			want []string
		}{
			{"root self", func() ([]string, error) { return sys.CapabilitiesSelf("secret/data/anything") }, []string{"root"}},
			{"self granted", func() ([]string, error) { return user.Sys().CapabilitiesSelf("secret/data/myapp/database") }, []string{"list", "read"}},
			{"self denied", func() ([]string, error) { return user.Sys().CapabilitiesSelf("secret/data/billing/stripe-key") }, []string{"deny"}},
			{"root asks for token", func() ([]string, error) { return sys.Capabilities(tok.ClientToken, "secret/data/myapp/database") }, []string{"list", "read"}},
			{"root asks for token, denied", func() ([]string, error) { return sys.Capabilities(tok.ClientToken, "secret/data/billing/stripe-key") }, []string{"deny"}},
			{"accessor", func() ([]string, error) { return sys.CapabilitiesAccessor(tok.Accessor, "secret/data/myapp/x") }, []string{"list", "read"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				got, err := tc.call()
				if err != nil || !sameStrings(got, tc.want) {
					t.Fatalf("got %v %v, want %v", got, err, tc.want)
				}
			})
		}
		// sys/capabilities (for another token) is not in the default policy.
		_, err := user.Sys().Capabilities(s.RootToken, "secret/data/x")
		denied(t, err)
	})
}
