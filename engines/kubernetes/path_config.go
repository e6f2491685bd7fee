package kubernetes

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/engines/jwks"
	"github.com/ledger-secrets/ledger/ledger"
	"github.com/ledger-secrets/ledger/projections/authrole"
)

// Config is a mount's configuration, as stored (sealed) in the log.
type Config struct {
	Host                 string   `json:"kubernetes_host"`
	CACert               string   `json:"kubernetes_ca_cert,omitempty"`
	ReviewerJWT          string   `json:"token_reviewer_jwt,omitempty"`
	PEMKeys              []string `json:"pem_keys,omitempty"`
	Issuer               string   `json:"issuer,omitempty"`
	DisableISSValidation bool     `json:"disable_iss_validation"`
	DisableLocalCAJWT    bool     `json:"disable_local_ca_jwt"`
	// JWKSURL and JWKSCAPEM are Ledger's: the cluster's service-account issuer keys
	// (/openid/v1/jwks), for validating logins locally without a TokenReview.
	JWKSURL   string `json:"jwks_url,omitempty"`
	JWKSCAPEM string `json:"jwks_ca_pem,omitempty"`
	// UseAnnotations: at login, the service account's annotations under
	// AnnotationPrefix become alias metadata (the API server is asked for the account).
	UseAnnotations bool `json:"use_annotations_as_alias_metadata,omitempty"`
}

var configFields = []string{"kubernetes_host", "kubernetes_ca_cert", "token_reviewer_jwt", "pem_keys", "issuer",
	"disable_iss_validation", "disable_local_ca_jwt", "jwks_url", "jwks_ca_pem", "use_annotations_as_alias_metadata"}

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

// readConfig is GET config: never the reviewer JWT, only whether one is set.
func (b *Backend) readConfig() (*engines.Response, error) {
	c, ok := b.config()
	if !ok {
		return &engines.Response{}, nil
	}
	return &engines.Response{Data: map[string]any{
		"kubernetes_host":                   c.Host,
		"kubernetes_ca_cert":                c.CACert,
		"pem_keys":                          append([]string{}, c.PEMKeys...),
		"issuer":                            c.Issuer,
		"disable_iss_validation":            c.DisableISSValidation,
		"disable_local_ca_jwt":              c.DisableLocalCAJWT,
		"token_reviewer_jwt_set":            c.ReviewerJWT != "",
		"use_annotations_as_alias_metadata": c.UseAnnotations,
		"jwks_url":                          c.JWKSURL,
		"jwks_ca_pem":                       c.JWKSCAPEM,
	}}, nil
}

// writeConfig is POST config. Absent fields keep their stored values, as in Vault.
func (b *Backend) writeConfig(r *request) (*engines.Response, error) {
	c, exists := b.config()
	if !exists {
		c.DisableISSValidation = true // Vault's default since 1.9
	}
	var err error
	str := func(key string, dst *string) {
		if err == nil && engines.Has(r.data, key) {
			*dst, err = engines.String(r.data, key, "")
		}
	}
	str("kubernetes_host", &c.Host)
	str("kubernetes_ca_cert", &c.CACert)
	str("token_reviewer_jwt", &c.ReviewerJWT)
	str("issuer", &c.Issuer)
	str("jwks_url", &c.JWKSURL)
	str("jwks_ca_pem", &c.JWKSCAPEM)
	if err != nil {
		return nil, err
	}
	for key, dst := range map[string]*bool{"disable_iss_validation": &c.DisableISSValidation, "disable_local_ca_jwt": &c.DisableLocalCAJWT,
		"use_annotations_as_alias_metadata": &c.UseAnnotations} {
		if engines.Has(r.data, key) {
			if *dst, err = engines.Bool(r.data, key, false); err != nil {
				return nil, err
			}
		}
	}
	if engines.Has(r.data, "pem_keys") {
		if c.PEMKeys, err = engines.Strings(r.data, "pem_keys"); err != nil {
			return nil, err
		}
	}
	if c.Host == "" {
		return nil, engines.BadRequest("no host provided")
	}
	if u, err := url.Parse(c.Host); err != nil || u.Host == "" && !strings.Contains(c.Host, ":") && u.Scheme != "" {
		return nil, engines.BadRequest("invalid kubernetes_host %q", c.Host)
	}
	if _, err := jwks.ParsePEMKeys(c.PEMKeys); err != nil {
		return nil, engines.BadRequest("invalid pem_keys: %v", err)
	}
	for _, ca := range []struct{ field, pem string }{{"kubernetes_ca_cert", c.CACert}, {"jwks_ca_pem", c.JWKSCAPEM}} {
		if _, err := jwks.HTTPClient(ca.pem); err != nil {
			return nil, engines.BadRequest("invalid %s: %v", ca.field, err)
		}
	}
	if c.JWKSURL != "" {
		if u, err := url.Parse(c.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, engines.BadRequest("invalid jwks_url %q: expected an http(s) URL", c.JWKSURL)
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
