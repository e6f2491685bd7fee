package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// smallBodyLimits are the limit sets the differential tests run under: the defaults, and limits
// small enough that short inputs cross each of them.
var smallBodyLimits = []struct {
	name   string
	limits Limits
}{
	{"defaults", Limits{}},
	{"small", Limits{MaxDepth: 3, MaxObjectEntries: 2, MaxArrayElements: 3, MaxStringLength: 5, MaxFields: 4}},
	{"fuzz", Limits{MaxDepth: 6, MaxObjectEntries: 20, MaxArrayElements: 20, MaxStringLength: 64, MaxFields: 50}},
}

// smallBodySeeds are bodies that differ where the two decoders could: syntax, types, numbers,
// escapes, duplicates, nesting, size, and what follows the object.
func smallBodySeeds() []string {
	nest := func(n int, open, close, inner string) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	keys := func(n int, dup bool) string {
		var b strings.Builder
		b.WriteByte('{')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			if dup {
				i %= 3
			}
			fmt.Fprintf(&b, `"k%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	big := strings.Repeat("s", maxSmallBody)
	return []string{
		// empty, null, whitespace, not an object
		``, ` `, "\t\r\n", `null`, ` null `, `nul`, `nullx`, `{}`, ` {} `, "\v{}", "\f{}", "\u00a0{}",
		"\ufeff{}", `[]`, `[1]`, `"s"`, `1`, `true`, `{}}`, `}`, `{`, `{"a"}`, `{"a":}`, `{"a" 1}`,
		`{"a":1,}`, `{,"a":1}`, `{"a":1 "b":2}`, `{1:2}`, `{null:1}`, `{'a':1}`, `{"a":[1,]}`,
		`{"a":[,1]}`, `{"a":tru}`, `{"a":truex}`, `{"a":nulll}`, `{"a":True}`,
		// trailing data
		`{"a":1}{"b":2}`, `{"a":1} x`, `{"a":1} null`, `{"a":1}]`, "{\"a\":1}\x00", `{"a":1} 2`,
		// the bodies of the benchmark and the API's usual ones
		`{"plaintext":"c3NzcGxhaW50ZXh0IHdpdGggYSBsaXR0bGUgbW9yZSB0byBzYXkgdGhhbiB1c3VhbCBpbiB0aGUgYmVuY2g="}`,
		`{"data":{"username":"app","password":"0123456789abcdef0123456789abcdef"}}`,
		`{"data":{"k":"v"},"options":{"cas":0}}`, `{"policy":"path \"secret/*\" { capabilities = [\"read\"] }"}`,
		`{"batch_input":[{"plaintext":"YQ=="},{"plaintext":"Yg==","context":"Yw=="}]}`,
		`{"a":[1,2,{"b":null}],"c":{"d":[true,false,null,[],{}]}}`,
		// numbers
		`{"n":0}`, `{"n":-0}`, `{"n":-0.0}`, `{"n":1e400}`, `{"n":1E+2}`, `{"n":1e-2}`, `{"n":-1.5e-10}`,
		`{"n":12345678901234567890123456789}`, `{"n":01}`, `{"n":1.}`, `{"n":.1}`, `{"n":-}`, `{"n":+1}`,
		`{"n":1e}`, `{"n":1e+}`, `{"n":0x10}`, `{"n":NaN}`, `{"n":Infinity}`, `{"n":-01}`, `{"n":1.e2}`,
		`{"n":[0,-0,1e1,1.0E-0]}`,
		// strings and escapes
		`{"s":"\u00e9\u4e2d\ud83d\ude00"}`, `{"s":"\ud800"}`, `{"s":"\udc00\ud800"}`, `{"s":"\ud800\u0041"}`,
		`{"s":"\ud83d\ude00\ud83d"}`, `{"s":"\u00"}`, `{"s":"\uZZZZ"}`, `{"s":"\x"}`, `{"s":"\/\b\f\n\r\t\"\\"}`,
		`{"\u0000":"\u0000"}`, "{\"s\":\"a\tb\"}", "{\"s\":\"a\nb\"}", "{\"s\":\"\x7f\"}", `{"s":"\\"}`,
		`{"s":"\\\""}`, `{"s":"a\\"}`, `{"s":"\"}`, `{"s":"abc`, "{\"\xff\":\"\xff\"}", "{\"s\":\"\xc3\"}",
		"{\"s\":\"\xed\xa0\x80\"}", "{\"s\":\"\xf4\x90\x80\x80\"}", "{\"s\":\"\xe2\x82\"}", "{\"é\":\"€\"}",
		`{"s":"12345"}`, `{"s":"123456"}`, `{"12345":1}`, `{"123456":1}`, `{"s":"\u00e9\u00e9\u00e9"}`,
		`{"a:b":"c:d","e":"{[","f":"]}"}`, `{"s":":::"}`, `{"":""}`,
		// duplicates: the last wins, every one counts
		`{"a":1,"a":2}`, `{"a":{"x":1},"a":{"y":2}}`, `{"a":"123456","a":1}`, `{"a":[[[[1]]]],"a":1}`,
		`{"a":1,"b":2,"a":3}`, `{"a":{"b":1,"b":2}}`, `{"a":[{"k":1,"k":2}]}`, keys(10, true),
		// wide and deep
		keys(2, false), keys(3, false), keys(4, false), keys(100, false), keys(10001, false),
		`{"a":[1,2,3]}`, `{"a":[1,2,3,4]}`, `{"a":[[1],[2]]}`, `{"a":{"b":{}}}`, `{"a":{"b":{"c":{}}}}`,
		`{"a":` + nest(2, "[", "]", "1") + `}`, `{"a":` + nest(3, "[", "]", "") + `}`,
		`{"a":` + nest(maxSmallDepth-2, "[", "]", "") + `}`, `{"a":` + nest(maxSmallDepth-1, "[", "]", "") + `}`,
		`{"a":` + nest(maxSmallDepth, "[", "]", "") + `}`, `{"a":` + nest(499, "[", "]", "") + `}`,
		`{"a":` + nest(500, "[", "]", "") + `}`, `{"a":` + nest(5000, "[", "]", "") + `}`,
		`{"a":` + nest(10, `{"a":`, "}", "1") + `}`, `{"a":` + nest(600, `{"a":`, "}", "1") + `}`,
		`{"a":` + nest(3, "[", "]", "") + `,"b":` + nest(3, "[", "]", "") + `}`,
		`{"a":` + strings.Repeat("[", 20) + `}`, `{"a":` + strings.Repeat("]", 20) + `}`,
		`{"a":[` + strings.TrimSuffix(strings.Repeat("1,", 10001), ",") + `]}`,
		// around and over maxSmallBody
		`{"a":"` + big[:maxSmallBody-9] + `"}`, `{"a":"` + big[:maxSmallBody-8] + `"}`,
		`{"a":"` + big[:maxSmallBody-7] + `"}`, `{"a":"` + big + `"}`, `{"a":"` + big + `"} x`,
		`{"a":"` + big + `","a":` + nest(600, "[", "]", "") + `}`, `{"a":"` + big + `",`,
		strings.Repeat(" ", maxSmallBody) + `{"a":1}`, `{"a":1}` + strings.Repeat(" ", maxSmallBody),
		`{"a":1}` + strings.Repeat(" ", maxSmallBody) + "x",
	}
}

// sameDecode fails t unless decodeJSONObject (fast path, then fallback) answers in exactly as the
// streaming decoder alone does: the same map with the same Go types, or the same error.
func sameDecode(t *testing.T, in []byte, limits Limits) {
	t.Helper()
	want, wantErr := streamJSONObject(bytes.NewReader(in), limits)
	for _, r := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(in)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(in))},
	} {
		got, err := decodeJSONObject(r.r, DefaultMaxRequestBytes, limits)
		switch {
		case (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error():
			t.Fatalf("%s, input %.200q: error %v, the streaming decoder's %v", r.name, in, err, wantErr)
		case !reflect.DeepEqual(got, want):
			t.Fatalf("%s, input %.200q: decoded %#v, the streaming decoder %#v", r.name, in, got, want)
		}
	}
}

func TestDecodeSmallBodyMatchesStreaming(t *testing.T) {
	for _, lim := range smallBodyLimits {
		t.Run(lim.name, func(t *testing.T) {
			for _, in := range smallBodySeeds() {
				sameDecode(t, []byte(in), lim.limits)
			}
		})
	}
}

// TestDecodeSmallBodyMatchesStreamingGenerated runs the differential test on generated bodies:
// mostly valid ones, which the fuzzer seldom reaches and the fast path answers, with duplicate
// keys, every escape, invalid UTF-8, numbers of every form and whitespace of every kind, and a
// byte changed in some.
func TestDecodeSmallBodyMatchesStreamingGenerated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	n := 3000
	if testing.Short() {
		n = 300
	}
	for range n {
		in := genJSON(rng)
		if rng.IntN(8) == 0 && len(in) > 0 {
			const swaps = "{}[]:,\"\\ 0a\xc3\xff"
			in[rng.IntN(len(in))] = swaps[rng.IntN(len(swaps))]
		}
		for _, lim := range smallBodyLimits {
			sameDecode(t, in, lim.limits)
		}
	}
}

// genJSON writes a random JSON object, valid but for what the caller changes.
func genJSON(rng *rand.Rand) []byte {
	var b []byte
	ws := func() {
		for rng.IntN(4) == 0 {
			b = append(b, " \t\r\n"[rng.IntN(4)])
		}
	}
	pick := func(s ...string) string { return s[rng.IntN(len(s))] }
	str := func() {
		b = append(b, '"')
		for range rng.IntN(8) {
			b = append(b, pick("a", "bc", "é", "€", "😀", ":", "{", "]", ",", `\"`, `\\`, `\/`, `\b`, `\f`,
				`\n`, `\r`, `\t`, `\u0041`, `\u00e9`, `\u0000`, `\ud83d\ude00`, `\ud800`, `\udc00`,
				`\ud800\u0041`, `\uFFFF`, "\xff", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x7f")...)
		}
		b = append(b, '"')
	}
	num := func() {
		if rng.IntN(2) == 0 {
			b = append(b, '-')
		}
		b = append(b, pick("0", "1", "9", "10", "123456789012345678901234567890")...)
		if rng.IntN(3) == 0 {
			b = append(b, pick(".0", ".5", ".000001")...)
		}
		if rng.IntN(3) == 0 {
			b = append(b, pick("e", "E")+pick("", "+", "-")+pick("0", "1", "10", "400")...)
		}
	}
	var value func(depth int)
	object := func(depth int) {
		b = append(b, '{')
		for i := range rng.IntN(5) {
			if i > 0 {
				b = append(b, ',')
			}
			ws()
			if rng.IntN(2) == 0 {
				b = append(b, pick(`"a"`, `"b"`, `"a:b"`, `"\u0061"`, `""`, `"123456"`)...)
			} else {
				str()
			}
			ws()
			b = append(b, ':')
			ws()
			value(depth + 1)
			ws()
		}
		b = append(b, '}')
	}
	value = func(depth int) {
		k := rng.IntN(10)
		if depth > 7 {
			k = 2 + rng.IntN(8)
		}
		switch k {
		case 0:
			object(depth)
		case 1:
			b = append(b, '[')
			for i := range rng.IntN(5) {
				if i > 0 {
					b = append(b, ',')
				}
				ws()
				value(depth + 1)
				ws()
			}
			b = append(b, ']')
		case 2, 3, 4:
			str()
		case 5, 6, 7:
			num()
		default:
			b = append(b, pick("true", "false", "null")...)
		}
	}
	ws()
	object(0)
	ws()
	return b
}

// FuzzDecodeSmallBody: whatever the body, the fast path and its fallback answer as the
// streaming decoder does, under every limit set.
func FuzzDecodeSmallBody(f *testing.F) {
	for _, s := range smallBodySeeds() {
		if len(s) <= 1024 {
			f.Add([]byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, lim := range smallBodyLimits {
			sameDecode(t, in, lim.limits)
		}
	})
}

// The fast path answers the usual bodies, and leaves to the streaming decoder what it must.
func TestDecodeSmallBodyTakesFastPath(t *testing.T) {
	small := smallBodyLimits[1].limits.withDefaults()
	cases := []struct {
		name, body string
		limits     Limits
		fast       bool
	}{
		{"transit encrypt", `{"plaintext":"c3Nz"}`, Limits{}, true},
		{"kv write", `{"data":{"username":"app","password":"p"}}`, Limits{}, true},
		{"colon in a string", `{"url":"https://x:8200","t":"12:00:00"}`, Limits{}, true},
		{"escaped quote", `{"s":"a\"b:c\\","t":1}`, Limits{}, true},
		{"within small limits", `{"a":[1,2],"b":"12345"}`, small, true},
		{"empty", ``, Limits{}, false},
		{"null", `null`, Limits{}, false},
		{"duplicate key", `{"a":1,"a":2}`, Limits{}, false},
		{"nested duplicate key", `{"a":{"b":1,"b":2}}`, Limits{}, false},
		{"trailing data", `{"a":1} 1`, Limits{}, false},
		{"syntax", `{"a":}`, Limits{}, false},
		{"too deep for the fast path", `{"a":` + strings.Repeat("[", maxSmallDepth) + strings.Repeat("]", maxSmallDepth) + `}`, Limits{}, false},
		{"over a limit", `{"a":"123456"}`, small, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, ok := decodeSmall([]byte(tc.body), tc.limits.withDefaults())
			if ok != tc.fast {
				t.Fatalf("fast path %v, want %v", ok, tc.fast)
			}
		})
	}
}

// A decoded body keeps nothing of the pooled buffer it was read into: the next body overwrites
// the buffer, and the buffer is cleared before it goes back.
func TestDecodeSmallBodyOwnsItsStrings(t *testing.T) {
	first, err := decodeJSONObject(strings.NewReader(`{"key":"value","n":12}`), DefaultMaxRequestBytes, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := decodeJSONObject(strings.NewReader(`{"xyz":"XXXXX","m":99}`), DefaultMaxRequestBytes, Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]any{"key": "value", "n": json.Number("12")}
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("first body now reads %#v", first)
	}
	bp := smallBodies.Get().(*[]byte)
	defer smallBodies.Put(bp)
	if i := bytes.IndexFunc(*bp, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("a pooled buffer holds a body's bytes at %d", i)
	}
}

// Over max_request_size, the body is refused with the same 413 whether the limit falls within
// the first maxSmallBody bytes or after them.
func TestDecodeSmallBodyTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int64
		body    string
		tooLong bool
	}{
		{"limit in the small buffer", 100, `{"a":"` + strings.Repeat("s", 200) + `"}`, true},
		{"syntax error before the limit", 100, `{"a":` + strings.Repeat(" ", 50) + `x` + strings.Repeat(" ", 200) + `}`, false},
		{"limit past the small buffer", maxSmallBody + 100, `{"a":"` + strings.Repeat("s", maxSmallBody+200) + `"}`, true},
		{"body at the limit", 1000, `{"a":"` + strings.Repeat("s", 1000-8) + `"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reader := func() io.Reader {
				return http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(strings.NewReader(tc.body)), tc.max)
			}
			want, wantErr := streamJSONObject(reader(), Limits{})
			got, err := decodeJSONObject(reader(), tc.max, Limits{})
			if fmt.Sprint(err) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
				t.Fatalf("decoded %v, %v; the streaming decoder %v, %v", got, err, want, wantErr)
			}
			var mbe, wantMBE *http.MaxBytesError
			if errors.As(err, &mbe) != errors.As(wantErr, &wantMBE) {
				t.Fatalf("error %v is a MaxBytesError: %v; the streaming decoder's %v",
					err, errors.As(err, &mbe), wantErr)
			}
			// The small read stops at max_request_size: a body refused for its syntax within it is
			// not also marked too large, which closes the connection.
			counted := &countingReader{r: strings.NewReader(tc.body)}
			if _, err := decodeJSONObject(http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(counted), tc.max), tc.max, Limits{}); !tc.tooLong && counted.n > tc.max {
				t.Fatalf("read %d bytes of the body for %v, the limit is %d", counted.n, err, tc.max)
			}
			b := &body{r: reader(), max: tc.max, declared: -1}
			if _, err := b.decode(); errors.Is(err, errBodyTooLarge) != tc.tooLong {
				t.Fatalf("body.decode: %v; a 413: %v", err, tc.tooLong)
			}
		})
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// BenchmarkDecodeSmallBody compares the streaming decoder alone with decodeJSONObject on a
// transit encrypt body and a KV v2 write body.
func BenchmarkDecodeSmallBody(b *testing.B) {
	bodies := []struct{ name, body string }{
		{"transit-encrypt", `{"plaintext":"` + strings.Repeat("c3Nz", 22) + `"}`},
		{"kv-write", `{"data":{"username":"app","password":"` + strings.Repeat("0123456789abcdef", 2) + `"}}`},
	}
	paths := []struct {
		name   string
		decode func(io.Reader, Limits) (map[string]any, error)
	}{
		{"stream", streamJSONObject},
		{"fast", func(r io.Reader, l Limits) (map[string]any, error) {
			return decodeJSONObject(r, DefaultMaxRequestBytes, l)
		}},
	}
	for _, body := range bodies {
		for _, p := range paths {
			b.Run(body.name+"/"+p.name, func(b *testing.B) {
				in := []byte(body.body)
				r := bytes.NewReader(in)
				b.ReportAllocs()
				for b.Loop() {
					r.Reset(in)
					if _, err := p.decode(r, Limits{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
