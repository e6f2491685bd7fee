package httpapi

import (
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
)

// Snapshots travel as bytes, not JSON, so they have routes of their own; authentication,
// authorisation (sudo) and audit still happen in the pipeline (commands.Core.SaveSnapshot and
// RestoreSnapshot).

func registerSnapshot(e *echo.Echo, a *api) {
	e.GET("/v1/sys/storage/raft/snapshot", a.snapshotSave)
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		e.Add(m, "/v1/sys/storage/raft/snapshot", a.snapshotRestore(false))
		e.Add(m, "/v1/sys/storage/raft/snapshot-force", a.snapshotRestore(true))
	}
}

func (a *api) snapshotSave(c echo.Context) error {
	r := c.Request()
	reqID := newRequestID()
	data, err := a.core.SaveSnapshot(r.Context(), &commands.Request{ID: reqID, Token: token(r), RemoteAddr: r.RemoteAddr})
	if err != nil {
		return a.fail(c, reqID, err)
	}
	h := c.Response().Header()
	h.Set("Content-Length", strconv.Itoa(len(data)))
	h.Set("Content-Disposition", `attachment; filename="ledger.snap"`)
	h.Set("Cache-Control", "no-store")
	return c.Blob(http.StatusOK, "application/octet-stream", data)
}

func (a *api) snapshotRestore(force bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		reqID := newRequestID()
		res, err := a.core.RestoreSnapshot(r.Context(), &commands.Request{ID: reqID, Token: token(r), RemoteAddr: r.RemoteAddr}, r.Body, force)
		if err != nil {
			return a.fail(c, reqID, err)
		}
		env := map[string]any{
			"request_id": reqID, "lease_id": "", "renewable": false, "lease_duration": 0,
			"data": res, "wrap_info": nil, "warnings": nil, "auth": nil, "mount_type": "",
		}
		if len(res.Warnings) > 0 {
			env["warnings"] = res.Warnings
		}
		return c.JSON(http.StatusOK, env)
	}
}
