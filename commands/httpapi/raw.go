package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
)

// writeRaw answers a response that carries its own body (Vault's http_raw_body: sys/in-flight-req
// and the like) without the envelope. written is false for every other response.
func writeRaw(c echo.Context, resp *engines.Response) (written bool, err error) {
	body, ok := resp.Data[commands.RawBody]
	if !ok {
		return false, nil
	}
	status := http.StatusOK
	if s, ok := resp.Data[commands.RawStatusCode].(int); ok && s > 0 {
		status = s
	}
	if hs, ok := resp.Data["http_headers"].(map[string][]string); ok {
		for k, vs := range hs {
			for _, v := range vs {
				c.Response().Header().Add(k, v)
			}
		}
	}
	if status == http.StatusNoContent {
		return true, c.NoContent(status)
	}
	ctype, _ := resp.Data[commands.RawContentType].(string)
	if ctype == "" {
		ctype = "application/json"
	}
	var b []byte
	switch v := body.(type) {
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		if b, err = json.Marshal(v); err != nil {
			return true, err
		}
	}
	return true, c.Blob(status, ctype, b)
}
