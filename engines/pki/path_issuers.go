package pki

import (
	"encoding/pem"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	pkiview "github.com/ledger-secrets/ledger/projections/pki"
)

func (b *Backend) listIssuers() *engines.Response {
	st, _ := b.view.Mount(b.mount.UUID)
	keys := make([]string, 0, len(st.Issuers))
	info := map[string]any{}
	for id, is := range st.Issuers {
		keys = append(keys, id)
		info[id] = map[string]any{"issuer_name": is.Name, "is_default": id == st.Config.DefaultIssuer,
			"key_id": is.KeyID, "serial_number": is.Serial}
	}
	sort.Strings(keys)
	return &engines.Response{Data: map[string]any{"keys": keys, "key_info": info}}
}

func (b *Backend) listKeys() *engines.Response {
	st, _ := b.view.Mount(b.mount.UUID)
	keys := make([]string, 0, len(st.Keys))
	info := map[string]any{}
	for id, k := range st.Keys {
		keys = append(keys, id)
		info[id] = map[string]any{"key_name": k.Name, "is_default": id == st.Config.DefaultKey}
	}
	sort.Strings(keys)
	return &engines.Response{Data: map[string]any{"keys": keys, "key_info": info}}
}

func keyData(k pkiview.Key) map[string]any {
	return map[string]any{"key_id": k.ID, "key_name": k.Name, "key_type": k.Type, "key_bits": k.Bits}
}

// keyOp serves key/:ref: read, rename, delete. A key in use by an issuer is not deleted.
func (b *Backend) keyOp(req *engines.Request, ref string) (*engines.Response, error) {
	k, err := b.resolveKey(ref)
	if err != nil {
		if req.Op == engines.OpRead {
			return nil, engines.ErrNotFound
		}
		return nil, err
	}
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: keyData(k)}, nil
	case engines.OpCreate, engines.OpUpdate:
		name, err := engines.String(req.Data, "key_name", k.Name)
		if err != nil {
			return nil, err
		}
		if name != k.Name {
			if name != "" && (!nameRE.MatchString(name) || name == "default") {
				return nil, engines.BadRequest("key name %q is invalid", name)
			}
			st, _ := b.view.Mount(b.mount.UUID)
			if err := checkNamesFree(st, name, ""); err != nil {
				return nil, err
			}
		}
		k.Name = name
		ev, err := b.event(req, pkiview.KeyUpdated, "ca", pkiview.KeyPayload{Mount: b.mount.UUID, Key: k})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: keyData(k), Events: []ledger.Event{ev}}, nil
	case engines.OpDelete:
		st, _ := b.view.Mount(b.mount.UUID)
		for _, is := range st.Issuers {
			if is.KeyID == k.ID {
				return nil, engines.BadRequest("unable to delete key: key %s is in use by issuer %s; delete the issuer first", k.ID, is.ID)
			}
		}
		ev, err := b.event(req, pkiview.KeyDeleted, "ca", pkiview.DeletedPayload{Mount: b.mount.UUID, ID: k.ID})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func (b *Backend) issuerData(is pkiview.Issuer) map[string]any {
	u := b.view.Config(b.mount.UUID).URLs
	manual := any(nil)
	if len(is.ManualChain) > 0 {
		manual = is.ManualChain
	}
	return map[string]any{
		"issuer_id": is.ID, "issuer_name": is.Name, "key_id": is.KeyID, "certificate": is.Certificate,
		"ca_chain": chainPEMs(is), "manual_chain": manual, "leaf_not_after_behavior": is.LeafNotAfterBehavior,
		"usage": is.Usage, "revocation_signature_algorithm": "", "revoked": false,
		"issuing_certificates": nonNil(u.IssuingCertificates), "crl_distribution_points": nonNil(u.CRLDistributionPoints),
		"ocsp_servers": nonNil(u.OCSPServers), "enable_aia_url_templating": false, "serial_number": is.Serial,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// issuerOp serves issuer/:ref: read, update (name, leaf_not_after_behavior, usage,
// manual_chain), delete.
func (b *Backend) issuerOp(req *engines.Request, ref string) (*engines.Response, error) {
	is, err := b.resolveIssuer(ref)
	if err != nil {
		if req.Op == engines.OpRead {
			return nil, engines.ErrNotFound
		}
		return nil, err
	}
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: b.issuerData(is)}, nil
	case engines.OpCreate, engines.OpUpdate, engines.OpPatch:
		up := is
		if up.Name, err = engines.String(req.Data, "issuer_name", is.Name); err != nil {
			return nil, err
		}
		if up.Name != is.Name {
			if up.Name != "" && (!nameRE.MatchString(up.Name) || up.Name == "default") {
				return nil, engines.BadRequest("issuer name %q is invalid", up.Name)
			}
			st, _ := b.view.Mount(b.mount.UUID)
			if err := checkNamesFree(st, "", up.Name); err != nil {
				return nil, err
			}
		}
		if up.LeafNotAfterBehavior, err = engines.String(req.Data, "leaf_not_after_behavior", is.LeafNotAfterBehavior); err != nil {
			return nil, err
		}
		switch up.LeafNotAfterBehavior {
		case "err", "truncate", "permit":
		default:
			return nil, engines.BadRequest("invalid leaf_not_after_behavior %q: use err, truncate or permit", up.LeafNotAfterBehavior)
		}
		if engines.Has(req.Data, "usage") {
			u, err := engines.Strings(req.Data, "usage")
			if err != nil {
				return nil, err
			}
			for _, x := range u {
				switch x {
				case "read-only", "issuing-certificates", "crl-signing", "ocsp-signing":
				default:
					return nil, engines.BadRequest("unknown issuer usage %q", x)
				}
			}
			up.Usage = strings.Join(u, ",")
		}
		if engines.Has(req.Data, "manual_chain") {
			refs, err := engines.Strings(req.Data, "manual_chain")
			if err != nil {
				return nil, err
			}
			up.ManualChain = nil
			for i, r := range refs {
				if i == 0 && r != "self" && r != is.ID {
					return nil, engines.BadRequest("manual_chain must start with this issuer (\"self\")")
				}
				if r == "self" {
					r = is.ID
				}
				c, err := b.resolveIssuer(r)
				if err != nil {
					return nil, err
				}
				up.ManualChain = append(up.ManualChain, c.Certificate)
			}
		}
		ev, err := b.event(req, pkiview.IssuerUpdated, "ca", pkiview.IssuerPayload{Mount: b.mount.UUID, Issuer: up})
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: b.issuerData(up), Events: []ledger.Event{ev}}, nil
	case engines.OpDelete:
		ev, err := b.event(req, pkiview.IssuerDeleted, "ca", pkiview.DeletedPayload{Mount: b.mount.UUID, ID: is.ID})
		if err != nil {
			return nil, err
		}
		var warnings []string
		if b.view.Config(b.mount.UUID).DefaultIssuer == is.ID {
			warnings = append(warnings, "this was the default issuer; set a new one with config/issuers")
		}
		return &engines.Response{Warnings: warnings, Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

// readIssuerCert serves ca, ca/pem and issuer/:ref/{pem,der,json}.
func (b *Backend) readIssuerCert(ref, format string) (*engines.Response, error) {
	is, err := b.resolveIssuer(ref)
	if err != nil {
		if format == "json" {
			return nil, engines.ErrNotFound
		}
		return raw("text/plain", nil, http.StatusNoContent), nil
	}
	switch format {
	case "pem":
		return raw("application/pem-certificate-chain", []byte(is.Certificate+"\n"), http.StatusOK), nil
	case "der":
		blk, _ := pem.Decode([]byte(is.Certificate))
		return raw("application/pkix-cert", blk.Bytes, http.StatusOK), nil
	}
	return &engines.Response{Data: map[string]any{"certificate": is.Certificate, "ca_chain": chainPEMs(is),
		"issuer_id": is.ID, "issuer_name": is.Name}}, nil
}

// readChain serves ca_chain: the default issuer's chain, PEM, itself first.
func (b *Backend) readChain() (*engines.Response, error) {
	is, err := b.resolveIssuer("default")
	if err != nil {
		return raw("text/plain", nil, http.StatusNoContent), nil
	}
	return raw("application/pkix-cert", []byte(strings.Join(chainPEMs(is), "\n")+"\n"), http.StatusOK), nil
}

// writeConfig records a new whole configuration.
func (b *Backend) writeConfig(req *engines.Request, cfg pkiview.Config) (ledger.Event, error) {
	return b.event(req, pkiview.ConfigWritten, "ca", pkiview.ConfigPayload{Mount: b.mount.UUID, Config: cfg})
}

func (b *Backend) configIssuers(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: map[string]any{"default": cfg.DefaultIssuer,
			"default_follows_latest_issuer": cfg.DefaultFollowsLatestIssuer}}, nil
	case engines.OpCreate, engines.OpUpdate:
		ref, err := engines.String(req.Data, "default", "")
		if err != nil {
			return nil, err
		}
		if ref != "" {
			is, err := b.resolveIssuer(ref)
			if err != nil {
				return nil, err
			}
			cfg.DefaultIssuer = is.ID
		}
		if cfg.DefaultFollowsLatestIssuer, err = engines.Bool(req.Data, "default_follows_latest_issuer", cfg.DefaultFollowsLatestIssuer); err != nil {
			return nil, err
		}
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"default": cfg.DefaultIssuer,
			"default_follows_latest_issuer": cfg.DefaultFollowsLatestIssuer}, Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func (b *Backend) configKeys(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: map[string]any{"default": cfg.DefaultKey}}, nil
	case engines.OpCreate, engines.OpUpdate:
		ref, err := engines.String(req.Data, "default", "")
		if err != nil {
			return nil, err
		}
		k, err := b.resolveKey(ref)
		if err != nil {
			return nil, err
		}
		cfg.DefaultKey = k.ID
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"default": cfg.DefaultKey}, Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func checkURLs(field string, list []string) error {
	for _, s := range list {
		u, err := url.Parse(s)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return engines.BadRequest("invalid URL in %s: %q (expected an absolute URL such as http://ledger.example:8200/v1/pki/ca)", field, s)
		}
	}
	return nil
}

func (b *Backend) configURLs(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	out := func(u pkiview.URLs) map[string]any {
		return map[string]any{"issuing_certificates": nonNil(u.IssuingCertificates),
			"crl_distribution_points": nonNil(u.CRLDistributionPoints), "ocsp_servers": nonNil(u.OCSPServers),
			"enable_templating": false}
	}
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: out(cfg.URLs)}, nil
	case engines.OpCreate, engines.OpUpdate:
		for _, f := range []struct {
			key string
			dst *[]string
		}{{"issuing_certificates", &cfg.URLs.IssuingCertificates}, {"crl_distribution_points", &cfg.URLs.CRLDistributionPoints}, {"ocsp_servers", &cfg.URLs.OCSPServers}} {
			if !engines.Has(req.Data, f.key) {
				continue
			}
			v, err := engines.Strings(req.Data, f.key)
			if err != nil {
				return nil, err
			}
			if err := checkURLs(f.key, v); err != nil {
				return nil, err
			}
			*f.dst = v
		}
		if t, _ := engines.Bool(req.Data, "enable_templating", false); t {
			return nil, engines.BadRequest("enable_templating is not supported yet by this server")
		}
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: out(cfg.URLs), Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func crlData(c pkiview.CRLConfig) map[string]any {
	exp := c.Expiry
	if exp == 0 {
		exp = 72 * time.Hour
	}
	oexp := c.OCSPExpiry
	if oexp == 0 {
		oexp = 12 * time.Hour
	}
	return map[string]any{"expiry": exp.String(), "disable": c.Disable, "ocsp_disable": c.OCSPDisable,
		"ocsp_expiry": oexp.String(), "auto_rebuild": c.AutoRebuild, "auto_rebuild_grace_period": "12h0m0s",
		"enable_delta": c.EnableDelta, "delta_rebuild_interval": "15m0s", "cross_cluster_revocation": false,
		"unified_crl": false, "unified_crl_on_existing_paths": false}
}

func (b *Backend) configCRL(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: crlData(cfg.CRL)}, nil
	case engines.OpCreate, engines.OpUpdate:
		c := cfg.CRL
		var err error
		if c.Expiry, err = engines.Duration(req.Data, "expiry", c.Expiry); err != nil {
			return nil, err
		}
		if c.Disable, err = engines.Bool(req.Data, "disable", c.Disable); err != nil {
			return nil, err
		}
		if c.OCSPDisable, err = engines.Bool(req.Data, "ocsp_disable", c.OCSPDisable); err != nil {
			return nil, err
		}
		if c.OCSPExpiry, err = engines.Duration(req.Data, "ocsp_expiry", c.OCSPExpiry); err != nil {
			return nil, err
		}
		if c.AutoRebuild, err = engines.Bool(req.Data, "auto_rebuild", c.AutoRebuild); err != nil {
			return nil, err
		}
		if c.EnableDelta, err = engines.Bool(req.Data, "enable_delta", c.EnableDelta); err != nil {
			return nil, err
		}
		cfg.CRL = c
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: crlData(c), Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func autoTidyData(a pkiview.AutoTidy) map[string]any {
	iv := a.Interval
	if iv == 0 {
		iv = 12 * time.Hour
	}
	sb := a.SafetyBuffer
	if sb == 0 {
		sb = 72 * time.Hour
	}
	return map[string]any{"enabled": a.Enabled, "interval_duration": int64(iv / time.Second),
		"tidy_cert_store": a.TidyCertStore, "tidy_revoked_certs": a.TidyRevokedCerts,
		"safety_buffer": int64(sb / time.Second)}
}

func (b *Backend) configAutoTidy(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: autoTidyData(cfg.AutoTidy)}, nil
	case engines.OpCreate, engines.OpUpdate:
		a := cfg.AutoTidy
		var err error
		if a.Enabled, err = engines.Bool(req.Data, "enabled", a.Enabled); err != nil {
			return nil, err
		}
		if a.Interval, err = engines.Duration(req.Data, "interval_duration", a.Interval); err != nil {
			return nil, err
		}
		if a.Enabled && a.Interval != 0 && a.Interval < time.Minute {
			return nil, engines.BadRequest("interval_duration must be at least a minute")
		}
		if a.TidyCertStore, err = engines.Bool(req.Data, "tidy_cert_store", a.TidyCertStore); err != nil {
			return nil, err
		}
		if a.TidyRevokedCerts, err = engines.Bool(req.Data, "tidy_revoked_certs", a.TidyRevokedCerts); err != nil {
			return nil, err
		}
		if a.SafetyBuffer, err = engines.Duration(req.Data, "safety_buffer", a.SafetyBuffer); err != nil {
			return nil, err
		}
		cfg.AutoTidy = a
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: autoTidyData(a), Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}

func (b *Backend) configCluster(req *engines.Request) (*engines.Response, error) {
	cfg := b.view.Config(b.mount.UUID)
	switch req.Op {
	case engines.OpRead:
		return &engines.Response{Data: map[string]any{"path": cfg.ClusterPath, "aia_path": cfg.ClusterAIAPath}}, nil
	case engines.OpCreate, engines.OpUpdate:
		var err error
		if cfg.ClusterPath, err = engines.String(req.Data, "path", cfg.ClusterPath); err != nil {
			return nil, err
		}
		if cfg.ClusterAIAPath, err = engines.String(req.Data, "aia_path", cfg.ClusterAIAPath); err != nil {
			return nil, err
		}
		for _, p := range []string{cfg.ClusterPath, cfg.ClusterAIAPath} {
			if p != "" {
				if err := checkURLs("path", []string{p}); err != nil {
					return nil, err
				}
			}
		}
		ev, err := b.writeConfig(req, cfg)
		if err != nil {
			return nil, err
		}
		return &engines.Response{Data: map[string]any{"path": cfg.ClusterPath, "aia_path": cfg.ClusterAIAPath}, Events: []ledger.Event{ev}}, nil
	}
	return nil, engines.Errorf(engines.ErrUnsupported, "unsupported operation")
}
