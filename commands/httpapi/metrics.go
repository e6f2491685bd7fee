package httpapi

import (
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

// registerMetrics times every API request for vault_core_handle_request (or
// vault_core_handle_login_request), and on a listener configured with Vault's
// telemetry { unauthenticated_metrics_access = true } answers GET sys/metrics without a token,
// straight from the registry (sys/metrics through the pipeline needs a token with read).
func registerMetrics(e *echo.Echo, a *api) {
	t := a.core.Telemetry()
	e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			p := c.Request().URL.Path
			if strings.HasPrefix(p, "/v1/") {
				t.ObserveRequest(strings.HasPrefix(p, "/v1/auth/") && strings.Contains(p, "/login"), time.Since(start))
			}
			return err
		}
	})
	if !a.opts.UnauthenticatedMetrics {
		return
	}
	e.GET("/v1/sys/metrics", func(c echo.Context) error {
		body, ctype, err := t.Render(c.QueryParam("format"))
		if err != nil {
			return a.fail(c, "", err)
		}
		return c.Blob(http.StatusOK, ctype, body)
	})
}
