package httpapi

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/ledger-secrets/ledger/engines"
)

// rawBodyTypes are the request content types that reach a backend as bytes under
// http_raw_body instead of being decoded as JSON (OCSP requests are DER, RFC 6960).
var rawBodyTypes = map[string]bool{"application/ocsp-request": true}

// rawBody reads a request body of a raw content type. ok is false for every other request.
func (a *api) rawBody(c echo.Context) (map[string]any, bool, error) {
	r := c.Request()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if !rawBodyTypes[mt] {
		return nil, false, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, a.opts.MaxRequestBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, true, fmt.Errorf("%w: the limit is %d bytes (listener max_request_size)", errBodyTooLarge, a.opts.MaxRequestBytes)
		}
		return nil, true, engines.BadRequest("reading request body: %s", err.Error())
	}
	return map[string]any{"http_raw_body": b}, true, nil
}
