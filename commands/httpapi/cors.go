package httpapi

import (
	"net/http"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// corsMethods are the methods a cross-origin request may use, as Vault allows them.
var corsMethods = []string{http.MethodDelete, http.MethodGet, http.MethodOptions, http.MethodPost, http.MethodPut, http.MethodPatch, "LIST"}

// cors applies sys/config/cors as Vault's HTTP edge does: without an Origin header (CLIs,
// servers) or with CORS disabled nothing changes; a disallowed origin is a 403; a preflight
// (OPTIONS) is answered here; an allowed request gets Access-Control-Allow-Origin.
func (a *api) cors(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		origin := r.Header.Get("Origin")
		if origin == "" {
			return next(c)
		}
		cfg := a.core.CORS()
		if !cfg.Enabled {
			return next(c)
		}
		if !slices.Contains(cfg.AllowedOrigins, "*") && !slices.Contains(cfg.AllowedOrigins, origin) {
			writeErrors(c, http.StatusForbidden, "origin not allowed")
			return nil
		}
		if r.Method == http.MethodOptions && !slices.Contains(corsMethods, r.Header.Get("Access-Control-Request-Method")) {
			return c.NoContent(http.StatusMethodNotAllowed)
		}
		h := c.Response().Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", strings.Join(corsMethods, ","))
			h.Set("Access-Control-Allow-Headers", strings.Join(cfg.AllowedHeaders, ","))
			h.Set("Access-Control-Max-Age", "300")
			return c.NoContent(http.StatusOK)
		}
		return next(c)
	}
}
