package jwt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	capjwt "github.com/hashicorp/cap/jwt"
	capoidc "github.com/hashicorp/cap/oidc"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/jwks"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
)

// Config is a mount's configuration, as stored (sealed) in the log.
type Config struct {
	DiscoveryURL     string   `json:"oidc_discovery_url,omitempty"`
	DiscoveryCAPEM   string   `json:"oidc_discovery_ca_pem,omitempty"`
	ClientID         string   `json:"oidc_client_id,omitempty"`
	ClientSecret     string   `json:"oidc_client_secret,omitempty"`
	ResponseMode     string   `json:"oidc_response_mode,omitempty"`
	ResponseTypes    []string `json:"oidc_response_types,omitempty"`
	JWKSURL          string   `json:"jwks_url,omitempty"`
	JWKSCAPEM        string   `json:"jwks_ca_pem,omitempty"`
	ValidationPubKey []string `json:"jwt_validation_pubkeys,omitempty"`
	BoundIssuer      string   `json:"bound_issuer,omitempty"`
	SupportedAlgs    []string `json:"jwt_supported_algs,omitempty"`
	DefaultRole      string   `json:"default_role,omitempty"`
}

var configFields = []string{"oidc_discovery_url", "oidc_discovery_ca_pem", "oidc_client_id", "oidc_client_secret",
	"oidc_response_mode", "oidc_response_types", "jwks_url", "jwks_ca_pem", "jwt_validation_pubkeys", "bound_issuer",
	"jwt_supported_algs", "default_role", "provider_config", "namespace_in_state", "jwks_pairs", "unsupported_critical_cert_extensions"}

func (b *Backend) config() (Config, bool) {
	raw, ok := b.view.Config(b.mount.UUID)
	if !ok {
		return Config{}, false
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, false
	}
	return c, true
}

// readConfig is GET config: never the client secret.
func (b *Backend) readConfig() (*engines.Response, error) {
	c, ok := b.config()
	if !ok {
		return &engines.Response{}, nil
	}
	return &engines.Response{Data: map[string]any{
		"oidc_discovery_url": c.DiscoveryURL, "oidc_discovery_ca_pem": c.DiscoveryCAPEM, "oidc_client_id": c.ClientID,
		"oidc_response_mode": c.ResponseMode, "oidc_response_types": append([]string{}, c.ResponseTypes...),
		"jwks_url": c.JWKSURL, "jwks_ca_pem": c.JWKSCAPEM, "jwt_validation_pubkeys": append([]string{}, c.ValidationPubKey...),
		"bound_issuer": c.BoundIssuer, "jwt_supported_algs": append([]string{}, c.SupportedAlgs...),
		"default_role": c.DefaultRole, "provider_config": map[string]any{}, "namespace_in_state": true,
	}}, nil
}

// writeConfig is POST config, following Vault's pathConfigWrite: the whole configuration is
// replaced, exactly one key source is named, and a discovery URL or JWKS URL must answer.
func (b *Backend) writeConfig(r *request) (*engines.Response, error) {
	var c Config
	var err error
	for key, dst := range map[string]*string{
		"oidc_discovery_url": &c.DiscoveryURL, "oidc_discovery_ca_pem": &c.DiscoveryCAPEM, "oidc_client_id": &c.ClientID,
		"oidc_client_secret": &c.ClientSecret, "oidc_response_mode": &c.ResponseMode, "jwks_url": &c.JWKSURL,
		"jwks_ca_pem": &c.JWKSCAPEM, "bound_issuer": &c.BoundIssuer, "default_role": &c.DefaultRole,
	} {
		if *dst, err = engines.String(r.data, key, ""); err != nil {
			return nil, err
		}
	}
	for key, dst := range map[string]*[]string{"oidc_response_types": &c.ResponseTypes, "jwt_validation_pubkeys": &c.ValidationPubKey, "jwt_supported_algs": &c.SupportedAlgs} {
		if *dst, err = engines.Strings(r.data, key); err != nil {
			return nil, err
		}
	}
	n := 0
	for _, set := range []bool{c.DiscoveryURL != "", c.JWKSURL != "", len(c.ValidationPubKey) > 0} {
		if set {
			n++
		}
	}
	switch {
	case n != 1:
		return nil, engines.BadRequest("exactly one of 'jwt_validation_pubkeys', 'jwks_url' or 'oidc_discovery_url' must be set")
	case c.ClientID != "" && c.ClientSecret == "" || c.ClientID == "" && c.ClientSecret != "":
		return nil, engines.BadRequest("both 'oidc_client_id' and 'oidc_client_secret' must be set for OIDC")
	case c.ClientID != "" && c.DiscoveryURL == "":
		return nil, engines.BadRequest("'oidc_client_id' and 'oidc_client_secret' require 'oidc_discovery_url'")
	case c.ResponseMode != "" && c.ResponseMode != "query" && c.ResponseMode != "form_post":
		return nil, engines.BadRequest("invalid response_mode: %q", c.ResponseMode)
	}
	for _, t := range c.ResponseTypes {
		if t != "code" {
			return nil, engines.BadRequest("unsupported response_type: %q; only \"code\" is supported", t)
		}
	}
	if _, err := jwks.CapAlgorithms(c.SupportedAlgs); err != nil {
		return nil, engines.BadRequest("invalid jwt_supported_algs: %v", err)
	}
	for _, u := range []struct{ field, v string }{{"oidc_discovery_url", c.DiscoveryURL}, {"jwks_url", c.JWKSURL}} {
		if u.v == "" {
			continue
		}
		if pu, err := url.Parse(u.v); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			return nil, engines.BadRequest("invalid %s %q: expected an http(s) URL", u.field, u.v)
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 15*time.Second)
	defer cancel()
	switch {
	case len(c.ValidationPubKey) > 0:
		if _, err := jwks.ParsePEMKeys(c.ValidationPubKey); err != nil {
			return nil, engines.BadRequest("error parsing public key: %v", err)
		}
	case c.JWKSURL != "":
		client, err := jwks.HTTPClient(c.JWKSCAPEM)
		if err != nil {
			return nil, engines.BadRequest("invalid jwks_ca_pem: %v", err)
		}
		if err := jwks.NewRemote(client, c.JWKSURL).Fetch(ctx); err != nil {
			return nil, engines.BadRequest("error checking jwks URL: %v", err)
		}
	case c.DiscoveryURL != "":
		client, err := jwks.HTTPClient(c.DiscoveryCAPEM)
		if err != nil {
			return nil, engines.BadRequest("invalid oidc_discovery_ca_pem: %v", err)
		}
		if _, err := jwks.Discover(ctx, client, c.DiscoveryURL); err != nil {
			return nil, engines.BadRequest("error checking oidc discovery URL: %v", err)
		}
	}
	var warnings []string
	if unknown := engines.Unknown(r.data, configFields...); len(unknown) > 0 {
		warnings = append(warnings, fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", unknown))
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	ev := b.event(r, authrole.ConfigWritten, "\x00config", authrole.ConfigWrittenPayload{Mount: b.mount.UUID, Config: raw})
	return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}, nil
}

// verifier is what one configuration builds, kept until the configuration changes: the key
// set for JWT logins (fetched keys stay cached), and the OIDC provider for the code flow.
type verifier struct {
	cfg      Config
	keys     capjwt.KeySet
	issuer   string // expected iss of JWT logins
	provider *capoidc.Provider
}

func (b *Backend) verifierFor(c Config) (*verifier, error) {
	raw, _ := json.Marshal(c)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.verifier != nil && b.cfgRaw == string(raw) {
		return b.verifier, nil
	}
	v := &verifier{cfg: c, issuer: c.BoundIssuer}
	switch {
	case len(c.ValidationPubKey) > 0:
		keys, err := jwks.ParsePEMKeys(c.ValidationPubKey)
		if err != nil {
			return nil, err
		}
		if v.keys, err = jwks.Static(keys); err != nil {
			return nil, err
		}
	case c.JWKSURL != "":
		client, err := jwks.HTTPClient(c.JWKSCAPEM)
		if err != nil {
			return nil, err
		}
		v.keys = jwks.NewRemote(client, c.JWKSURL)
	case c.DiscoveryURL != "":
		client, err := jwks.HTTPClient(c.DiscoveryCAPEM)
		if err != nil {
			return nil, err
		}
		v.keys = jwks.NewDiscovered(client, c.DiscoveryURL)
		if v.issuer == "" {
			v.issuer = c.DiscoveryURL
		}
		if c.ClientID != "" {
			algs := make([]capoidc.Alg, 0, len(c.SupportedAlgs))
			for _, a := range c.SupportedAlgs {
				algs = append(algs, capoidc.Alg(a))
			}
			if len(algs) == 0 {
				algs = []capoidc.Alg{capoidc.RS256, capoidc.ES256, capoidc.ES384, capoidc.ES512, capoidc.RS384, capoidc.RS512, capoidc.PS256, capoidc.EdDSA}
			}
			var opts []capoidc.Option
			if c.DiscoveryCAPEM != "" {
				opts = append(opts, capoidc.WithProviderCA(c.DiscoveryCAPEM))
			}
			pc, err := capoidc.NewConfig(c.DiscoveryURL, c.ClientID, capoidc.ClientSecret(c.ClientSecret), algs, nil, opts...)
			if err != nil {
				return nil, err
			}
			if v.provider, err = capoidc.NewProvider(pc); err != nil {
				return nil, err
			}
		}
	}
	if b.verifier != nil && b.verifier.provider != nil {
		b.verifier.provider.Done()
	}
	b.verifier, b.cfgRaw = v, string(raw)
	return v, nil
}

// Close stops the OIDC provider's background work.
func (b *Backend) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.verifier != nil && b.verifier.provider != nil {
		b.verifier.provider.Done()
	}
}
