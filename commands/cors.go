package commands

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/ledger"
	corsview "github.com/ledger-secrets/ledger/projections/cors"
)

// StdAllowedHeaders are the request headers Vault always allows cross-origin; sys/config/cors's
// allowed_headers add to them.
var StdAllowedHeaders = []string{
	"Content-Type", "X-Requested-With", "X-Vault-AWS-IAM-Server-ID", "X-Vault-MFA",
	"X-Vault-No-Request-Forwarding", "X-Vault-Wrap-Format", "X-Vault-Wrap-TTL",
	"X-Vault-Policy-Override", "Authorization", "X-Vault-Token",
}

// CORSConfig is the CORS configuration the HTTP edge applies.
type CORSConfig = corsview.Config

// CORS returns the CORS configuration. While sealed it is the last one seen unsealed, as Vault
// keeps its CORS configuration in memory, so a browser UI can still read the seal status.
func (c *Core) CORS() CORSConfig {
	c.mu.RLock()
	st := c.st
	c.mu.RUnlock()
	if st != nil {
		cfg := st.sysv.cors.Config()
		c.misc.cors.Store(&cfg)
		return cfg
	}
	if cfg := c.misc.cors.Load(); cfg != nil {
		return *cfg
	}
	return CORSConfig{}
}

// corsPath serves sys/config/cors.
func (s *sysBackend) corsPath(req *engines.Request) (*engines.Response, error) {
	switch req.Op {
	case engines.OpRead:
		cfg := s.st.sysv.cors.Config()
		data := map[string]any{"enabled": cfg.Enabled}
		if cfg.Enabled {
			data["allowed_origins"] = cfg.AllowedOrigins
			data["allowed_headers"] = cfg.AllowedHeaders
		}
		return &engines.Response{Data: data}, nil
	case engines.OpCreate, engines.OpUpdate:
		origins, err := engines.Strings(req.Data, "allowed_origins")
		if err != nil {
			return nil, err
		}
		headers, err := engines.Strings(req.Data, "allowed_headers")
		if err != nil {
			return nil, err
		}
		if len(origins) == 0 {
			return nil, engines.BadRequest("at least one origin or the wildcard must be provided")
		}
		if slices.Contains(origins, "*") && len(origins) > 1 {
			return nil, engines.BadRequest("to allow all origins the '*' must be the only value for allowed_origins")
		}
		for _, o := range origins {
			if o == "*" {
				continue
			}
			if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
				return nil, engines.BadRequest("allowed_origins: %q is not an origin (scheme://host[:port])", o)
			}
		}
		all := append([]string(nil), StdAllowedHeaders...)
		for _, h := range headers {
			h = strings.TrimSpace(h)
			if h == "" || strings.ContainsAny(h, " \t\r\n:,") {
				return nil, engines.BadRequest("allowed_headers: %q is not a header name", h)
			}
			if !slices.ContainsFunc(all, func(x string) bool { return strings.EqualFold(x, h) }) {
				all = append(all, h)
			}
		}
		b, _ := json.Marshal(corsview.Config{Enabled: true, AllowedOrigins: origins, AllowedHeaders: all})
		return &engines.Response{Events: []ledger.Event{{Type: corsview.Configured, Subject: ledger.SubjectFor("config", "cors"), Payload: b}}}, nil
	case engines.OpDelete:
		if !s.st.sysv.cors.Config().Enabled {
			return nil, nil
		}
		return &engines.Response{Events: []ledger.Event{{Type: corsview.Disabled, Subject: ledger.SubjectFor("config", "cors"), Payload: []byte("{}")}}}, nil
	}
	return nil, engines.ErrUnsupported
}
