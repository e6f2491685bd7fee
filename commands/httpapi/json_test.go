package httpapi

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestSerializerLeavesNoResponseInPool: a response is written whole, and the pooled buffer it
// was encoded in holds none of it afterwards, also when it had to grow.
func TestSerializerLeavesNoResponseInPool(t *testing.T) {
	e := echo.New()
	for _, size := range []int{16, 10 << 10} {
		secret := "s3cr3t-" + strings.Repeat("v", size)
		rec := httptest.NewRecorder()
		c := e.NewContext(httptest.NewRequest(http.MethodGet, "/", nil), rec)
		if err := (jsonSerializer{}).Serialize(c, map[string]any{"data": map[string]any{"password": secret}}, ""); err != nil {
			t.Fatal(err)
		}
		if want := `{"data":{"password":"` + secret + "\"}}\n"; rec.Body.String() != want {
			t.Fatalf("body %.80q…, want %.80q…", rec.Body.String(), want)
		}
		// The buffer just returned is the one this goroutine gets next (same P, no GC between).
		bp := responseBuffers.Get().(*[]byte)
		if bytes.Contains((*bp)[:cap(*bp)], []byte("s3cr3t-")) {
			t.Fatalf("pooled buffer (%d bytes) still holds the response", cap(*bp))
		}
		responseBuffers.Put(bp)
	}
}
