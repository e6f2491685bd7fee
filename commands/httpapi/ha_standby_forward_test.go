package httpapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/ledger-secrets/ledger/commands/httpapi"
	"github.com/ledger-secrets/ledger/engines/jwt/oidctest"
)

// haStandbyCluster is a started, initialised and unsealed three-node cluster: the active node
// and the two standbys, as they were when the test began.
type haStandbyCluster struct {
	nodes    []*haTestNode
	root     string
	act      int
	sb1, sb2 int
}

func startHAStandbyCluster(t *testing.T, hopts httpapi.Options) *haStandbyCluster {
	t.Helper()
	nodes := startHAClusterWith(t, hopts)
	init := initHACluster(t, nodes)
	act := activeIndex(nodes, -1)
	return &haStandbyCluster{nodes: nodes, root: init.RootToken, act: act, sb1: (act + 1) % 3, sb2: (act + 2) % 3}
}

// caughtUp waits until every node has applied what the active node has (a standby
// authenticates a token from its own view).
func (h *haStandbyCluster) caughtUp(t *testing.T) {
	t.Helper()
	want := h.nodes[h.act].core.Applied()
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range h.nodes {
		for n.core.Applied() < want {
			if time.Now().After(deadline) {
				t.Fatalf("a standby did not apply position %d within 20 s (at %d)", want, n.core.Applied())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (h *haStandbyCluster) client(t *testing.T, i int, token string) *vault.Client {
	return haClient(t, h.nodes[i].url, token)
}

// noForward sends method path to node i with X-Vault-No-Request-Forwarding and returns the
// answer's status and Location, following no redirect.
func (h *haStandbyCluster) noForward(t *testing.T, i int, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, h.nodes[i].url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-No-Request-Forwarding", "true")
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestHAStandbyForwardsActiveOnlyReads: reads a standby cannot answer from its own views go to
// the active node through the official client pointed at a standby: a read that appends (a
// limited-use token spends a use with every request), a sudo path, the OIDC callback whose
// state only the active node holds, and the key-holder ceremonies. With
// X-Vault-No-Request-Forwarding each is answered 307 to the active node, nothing spent.
func TestHAStandbyForwardsActiveOnlyReads(t *testing.T) {
	h := startHAStandbyCluster(t, httpapi.Options{})
	active := h.client(t, h.act, h.root)
	activeURL := h.nodes[h.act].url

	t.Run("limited-use token", func(t *testing.T) {
		sec, err := active.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 3})
		if err != nil {
			t.Fatal(err)
		}
		tok := sec.Auth.ClientToken
		h.caughtUp(t)
		// Not forwarded: 307 to the same path on the active node, and no use spent.
		code, loc := h.noForward(t, h.sb1, http.MethodGet, "/v1/auth/token/lookup-self", tok)
		if code != http.StatusTemporaryRedirect || loc != activeURL+"/v1/auth/token/lookup-self" {
			t.Fatalf("no-forwarding lookup-self on a standby: %d %q", code, loc)
		}
		for i := range 3 {
			if _, err := h.client(t, []int{h.sb1, h.sb2}[i%2], tok).Auth().Token().LookupSelf(); err != nil {
				t.Fatalf("use %d through a standby: %v", i+1, err)
			}
		}
		h.caughtUp(t)
		_, err = h.client(t, h.sb1, tok).Auth().Token().LookupSelf()
		wantStatus(t, "a fourth use of a three-use token through a standby", err, http.StatusForbidden)
	})

	t.Run("sudo path", func(t *testing.T) {
		code, loc := h.noForward(t, h.sb2, "LIST", "/v1/auth/token/accessors", h.root)
		if code != http.StatusTemporaryRedirect || loc != activeURL+"/v1/auth/token/accessors" {
			t.Fatalf("no-forwarding LIST auth/token/accessors on a standby: %d %q", code, loc)
		}
		sec, err := active.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}})
		if err != nil {
			t.Fatal(err)
		}
		// Asked at once, without a position: forwarded, so the active node's answer holds it.
		l, err := h.client(t, h.sb2, h.root).Logical().List("auth/token/accessors")
		if err != nil || l == nil {
			t.Fatalf("LIST auth/token/accessors through a standby: %v", err)
		}
		if !strings.Contains(strings.Join(strs(t, l.Data["keys"]), ","), sec.Auth.Accessor) {
			t.Fatalf("the accessor just created is missing from the standby's answer: %v", l.Data["keys"])
		}
		// A token without sudo is refused by the active node, as on a single node.
		h.caughtUp(t)
		_, err = h.client(t, h.sb2, sec.Auth.ClientToken).Logical().List("auth/token/accessors")
		wantStatus(t, "LIST auth/token/accessors without sudo", err, http.StatusForbidden)
	})

	t.Run("oidc callback", func(t *testing.T) {
		op := oidctest.New(t, cliCallback)
		op.AddUser("alice", oidctest.User{Password: "alice-pw", Email: "alice@example.com", Groups: []string{"engineering"}})
		root := h.client(t, h.sb1, h.root)
		if err := root.Sys().EnableAuthWithOptions("oidc", &vault.EnableAuthOptions{Type: "oidc"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/oidc/config", map[string]any{
			"oidc_discovery_url": op.URL, "oidc_client_id": op.ClientID, "oidc_client_secret": op.ClientSecret, "default_role": "engineer",
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/oidc/role/engineer", map[string]any{
			"user_claim": "email", "oidc_scopes": "email", "allowed_redirect_uris": cliCallback, "token_policies": "default",
		}); err != nil {
			t.Fatal(err)
		}
		h.caughtUp(t)
		login := func() url.Values {
			au, err := h.client(t, h.sb1, "").Logical().Write("auth/oidc/oidc/auth_url", map[string]any{"role": "engineer", "redirect_uri": cliCallback})
			if err != nil {
				t.Fatalf("auth_url through a standby: %v", err)
			}
			authURL, _ := au.Data["auth_url"].(string)
			loc, _, err := oidctest.NewBrowser(cliCallback).Login(authURL, "alice", "alice-pw")
			if err != nil {
				t.Fatalf("browser: %v", err)
			}
			u, err := url.Parse(loc)
			if err != nil || !strings.HasPrefix(loc, cliCallback) {
				t.Fatalf("provider sent the browser to %q", loc)
			}
			return u.Query()
		}
		callback := func(q url.Values) (*vault.Secret, error) {
			return h.client(t, h.sb2, "").Logical().ReadWithData("auth/oidc/oidc/callback", q)
		}
		q := login()
		code, loc := h.noForward(t, h.sb2, http.MethodGet, "/v1/auth/oidc/oidc/callback?"+q.Encode(), "")
		if code != http.StatusTemporaryRedirect || !strings.HasPrefix(loc, activeURL+"/v1/auth/oidc/oidc/callback?") {
			t.Fatalf("no-forwarding callback on a standby: %d %q", code, loc)
		}
		// The state was not spent by the 307: the callback through the other standby logs in.
		sec, err := callback(q)
		if err != nil || sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
			t.Fatalf("callback through a standby: %v %+v", err, sec)
		}
		if !strings.Contains(strings.Join(sec.Auth.Policies, ","), "default") {
			t.Fatalf("callback auth: %+v", sec.Auth)
		}
		// Bad input through the standby: the state again, an unknown state, no state.
		_, err = callback(q)
		wantStatus(t, "reused state", err, http.StatusBadRequest)
		if !strings.Contains(err.Error(), "Expired or missing OAuth state.") {
			t.Fatalf("reused state: %v", err)
		}
		_, err = callback(url.Values{"state": {"st_not-a-state"}, "code": {"nope"}})
		wantStatus(t, "unknown state", err, http.StatusBadRequest)
		_, err = callback(url.Values{})
		wantStatus(t, "no state", err, http.StatusBadRequest)
		if strings.Contains(err.Error(), q.Get("code")) {
			t.Fatal("an error echoed the authorization code")
		}
		// form_post: the provider POSTs the state and code; a write, forwarded as well.
		q2 := login()
		fp, err := h.client(t, h.sb2, "").Logical().Write("auth/oidc/oidc/callback", map[string]any{"state": q2.Get("state"), "code": q2.Get("code")})
		if err != nil || fp == nil || fp.Auth == nil || fp.Auth.ClientToken == "" {
			t.Fatalf("form_post callback through a standby: %v", err)
		}
	})

	t.Run("ceremonies", func(t *testing.T) {
		for _, p := range []string{"/v1/sys/generate-root/attempt", "/v1/sys/rekey/init", "/v1/sys/rekey-recovery-key/init"} {
			code, loc := h.noForward(t, h.sb1, http.MethodGet, p, "")
			if code != http.StatusTemporaryRedirect || loc != activeURL+p {
				t.Fatalf("no-forwarding GET %s on a standby: %d %q", p, code, loc)
			}
		}
		// The attempt lives on the active node: started through one standby, seen through the other.
		st, err := h.client(t, h.sb1, "").Sys().GenerateRootInit("", "")
		if err != nil || !st.Started || st.Nonce == "" {
			t.Fatalf("generate-root init through a standby: %v %+v", err, st)
		}
		st2, err := h.client(t, h.sb2, "").Sys().GenerateRootStatus()
		if err != nil || !st2.Started || st2.Nonce != st.Nonce {
			t.Fatalf("generate-root status through the other standby: %v %+v", err, st2)
		}
		// A wrong share through a standby: refused by the active node, the attempt kept.
		_, err = h.client(t, h.sb2, "").Sys().GenerateRootUpdate("bm90LWEtc2hhcmU=", "wrong-nonce")
		wantStatus(t, "generate-root update with a wrong nonce", err, http.StatusBadRequest)
		if err := h.client(t, h.sb2, "").Sys().GenerateRootCancel(); err != nil {
			t.Fatal(err)
		}
		if st3, err := h.client(t, h.sb1, "").Sys().GenerateRootStatus(); err != nil || st3.Started {
			t.Fatalf("generate-root after cancel through the other standby: %v %+v", err, st3)
		}
		rk, err := h.client(t, h.sb1, h.root).Sys().RekeyInit(&vault.RekeyInitRequest{SecretShares: 1, SecretThreshold: 1})
		if err != nil || !rk.Started {
			t.Fatalf("rekey init through a standby: %v", err)
		}
		rs, err := h.client(t, h.sb2, h.root).Sys().RekeyStatus()
		if err != nil || !rs.Started || rs.Nonce != rk.Nonce {
			t.Fatalf("rekey status through the other standby: %v %+v", err, rs)
		}
		if err := h.client(t, h.sb2, h.root).Sys().RekeyCancel(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("forged forwarding claim", func(t *testing.T) {
		// A client's own X-Ledger-Forwarded-* headers are not a cluster's claim: the request is
		// still forwarded (not taken as a second hop) and answered by the active node.
		sec, err := active.Auth().Token().Create(&vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 2})
		if err != nil {
			t.Fatal(err)
		}
		h.caughtUp(t)
		c := h.client(t, h.sb1, sec.Auth.ClientToken)
		c.AddHeader("X-Ledger-Forwarded-For", "10.9.9.9:1|"+strings.Repeat("1", 10))
		c.AddHeader("X-Ledger-Forwarded-Sig", "forged")
		if _, err := c.Auth().Token().LookupSelf(); err != nil {
			t.Fatalf("lookup-self with forged forwarding headers through a standby: %v", err)
		}
		// A bad token through a standby: 403 from the standby's own view, never 500.
		_, err = h.client(t, h.sb1, "not-a-token").Auth().Token().LookupSelf()
		wantStatus(t, "lookup-self with a bad token", err, http.StatusForbidden)
	})
}
