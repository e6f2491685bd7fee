package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines"
)

// The key-holder ceremonies (sys/rekey*, sys/generate-root/*) run through the pipeline like
// any sys path — unauthenticated, their shares authorise them — so each step is audited. This
// front only gives the states where the pipeline cannot help a clear answer first.
func registerCeremonies(e *echo.Echo, a *api) {
	for _, p := range []string{"/v1/sys/rekey/*", "/v1/sys/rekey-recovery-key/*", "/v1/sys/generate-root/*"} {
		e.Any(p, a.ceremony)
	}
}

func (a *api) ceremony(c echo.Context) error {
	r := c.Request()
	root := strings.HasPrefix(r.URL.Path, "/v1/sys/generate-root/")
	switch {
	case !a.core.Initialized():
		return a.fail(c, newRequestID(), fmt.Errorf("%w: initialise it first (ledger operator init)", commands.ErrNotInitialized))
	case root && !a.core.Unsealed():
		// Vault answers 400 here: generating a root token needs the keyring open.
		return a.fail(c, newRequestID(), engines.BadRequest("Vault is sealed: generate-root needs an unsealed server; unseal it first (ledger operator unseal)"))
	}
	if r.Method == http.MethodDelete && r.ContentLength != 0 && r.Body != nil {
		// The Vault client sends a cancel's nonce as a JSON body on DELETE; the pipeline reads
		// a DELETE's parameters from the query.
		var body struct {
			Nonce string `json:"nonce"`
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 4096))
		if err == nil && len(strings.TrimSpace(string(b))) > 0 {
			if json.Unmarshal(b, &body) != nil {
				return a.fail(c, newRequestID(), engines.BadRequest("the request body must be a JSON object such as {\"nonce\": \"...\"}"))
			}
			if body.Nonce != "" {
				q := r.URL.Query()
				q.Set("nonce", body.Nonce)
				r.URL.RawQuery = q.Encode()
			}
		}
	}
	return a.logical(c)
}
