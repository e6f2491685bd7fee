package httpapi

import (
	"sync"

	"github.com/labstack/echo/v4"
	segjson "github.com/segmentio/encoding/json"
)

// jsonSerializer writes responses with segmentio/encoding's JSON encoder, which gives
// encoding/json's output (sorted map keys, HTML escaping, Marshaler and TextMarshaler
// honoured) at under half its CPU and with a tenth of its allocations on a KV read's
// response (BENCHMARKS.md, issue 10). Pretty output (?pretty) and request bodies stay with
// echo's encoding/json serializer.
//
// A response is encoded into a pooled buffer and written from it, where Marshal would copy it
// out and append the newline to a third; the buffer is cleared before it goes back to the pool,
// so no response (a secret's value) outlives its request there.
type jsonSerializer struct{ echo.DefaultJSONSerializer }

// responseBuffers holds encoding buffers; one that grew past maxPooledResponse is dropped.
var responseBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const maxPooledResponse = 64 << 10

func (s jsonSerializer) Serialize(c echo.Context, i any, indent string) error {
	if indent != "" {
		return s.DefaultJSONSerializer.Serialize(c, i, indent)
	}
	bp := responseBuffers.Get().(*[]byte)
	b, err := segjson.Append((*bp)[:0], i, segjson.EscapeHTML|segjson.SortMapKeys)
	if err == nil {
		b = append(b, '\n')
		_, err = c.Response().Write(b)
	}
	clear((*bp)[:cap(*bp)]) // what was written before the buffer grew, if it did
	clear(b[:cap(b)])
	if cap(b) <= maxPooledResponse {
		*bp = b[:0]
		responseBuffers.Put(bp)
	}
	return err
}
