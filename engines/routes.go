package engines

import (
	"sort"
	"strings"
)

// Route describes one path of a backend the way Vault's framework does: the pattern it
// answers, the operations it takes and the fields it reads. It is the one source of three
// answers: the "Endpoint ignored these unrecognized parameters" warning, `?help=1` and
// sys/internal/specs/openapi.
type Route struct {
	// Pattern is relative to the mount. "{name}" matches one segment; a last "{name...}"
	// matches the rest of the path (slashes included). "keys/{name}", "data/{path...}".
	Pattern    string
	Operations []Operation
	Summary    string
	// Description is the longer help text; may be empty.
	Description string
	// Fields the path reads from the body (writes) or the query (reads); path parameters
	// are described here too, with In "path".
	Fields []Field
	// ArbitraryInput: every field is the caller's data (KV v1 values), none is unknown.
	ArbitraryInput bool
}

// Field is one parameter of a Route.
type Field struct {
	Name string
	// Type is one of "string", "int", "bool", "duration", "[]string", "map", "object",
	// "[]object"; the OpenAPI schema follows from it.
	Type        string
	Description string
	In          string // "path" for a path parameter, else "" (body or query)
	Deprecated  bool
}

// Describer is implemented by backends that describe their paths.
type Describer interface {
	Routes() []Route
}

// Match returns the route whose pattern matches path (relative to the mount) and the values
// of its path parameters. Literal patterns win over parameterised ones, as written order
// would make them brittle.
func Match(routes []Route, path string) (Route, map[string]string, bool) {
	path = strings.TrimSuffix(path, "/")
	first, _, _ := strings.Cut(path, "/")
	best, bestScore := -1, -1
	for i, r := range routes {
		// Most routes differ from the path in their first segment, a literal: skip those
		// before walking them (a transit request is matched against some forty routes).
		if p, _, _ := strings.Cut(r.Pattern, "/"); p != first && !strings.HasPrefix(p, "{") {
			continue
		}
		if score, ok := matchPattern(r.Pattern, path, nil); ok && score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		return Route{}, nil, false
	}
	params := map[string]string{}
	matchPattern(routes[best].Pattern, path, params)
	return routes[best], params, true
}

// segments walks a slash-separated string one segment at a time without splitting it: every
// request with a body is matched against its backend's whole route table (warnIgnored), and
// splitting each pattern was most of what a transit request allocated.
type segments struct {
	rest string
	done bool
}

func newSegments(s string) segments { return segments{rest: s, done: s == ""} }

func (s *segments) next() (string, bool) {
	if s.done {
		return "", false
	}
	seg, after, found := strings.Cut(s.rest, "/")
	s.rest, s.done = after, !found
	return seg, true
}

// left is the number of segments not yet walked.
func (s segments) left() int {
	if s.done {
		return 0
	}
	return strings.Count(s.rest, "/") + 1
}

// matchPattern scores a match by its number of literal segments; with params, it records the
// path parameters' values there.
func matchPattern(pattern, path string, params map[string]string) (int, bool) {
	pp, segs := newSegments(pattern), newSegments(path)
	score := 0
	for {
		p, ok := pp.next()
		if !ok {
			break
		}
		name, isParam := strings.CutPrefix(p, "{")
		if !isParam {
			if seg, ok := segs.next(); !ok || seg != p {
				return 0, false
			}
			score++
			continue
		}
		name = strings.TrimSuffix(name, "}")
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			// The rest of the path, less the literal segments that follow the parameter
			// ("mounts/{path...}/tune"); it may hold slashes, never nothing.
			if segs.left() <= pp.left() {
				return 0, false
			}
			value, tail := segs.rest, pp
			for tail.left() > 0 {
				lit := tail.rest[strings.LastIndexByte(tail.rest, '/')+1:]
				cut := strings.LastIndexByte(value, '/') // there is one: more segments than literals
				if strings.HasPrefix(lit, "{") || value[cut+1:] != lit {
					return 0, false
				}
				score++
				value = value[:cut]
				if i := strings.LastIndexByte(tail.rest, '/'); i >= 0 {
					tail.rest = tail.rest[:i]
				} else {
					tail.done = true
				}
			}
			if params != nil {
				params[rest] = value
			}
			return score, true
		}
		seg, ok := segs.next()
		if !ok || seg == "" {
			return 0, false
		}
		if params != nil {
			params[name] = seg
		}
	}
	return score, segs.left() == 0
}

// Takes reports whether the route serves op. A route that lists OpUpdate serves OpCreate.
func (r Route) Takes(op Operation) bool {
	for _, o := range r.Operations {
		if o == op || (o == OpUpdate && op == OpCreate) {
			return true
		}
	}
	return false
}

// Ignored returns the keys of data the route does not read, sorted, and the subset of them
// that differ from a known field only in case ("TTL" for "ttl"): Vault's fields are
// case-sensitive, so such a key is ignored too, and the caller deserves to know why.
func (r Route) Ignored(data map[string]any) (ignored []string, shadows map[string]string) {
	if r.ArbitraryInput {
		return nil, nil
	}
	// Routes have a handful of fields: a scan of them costs less than building maps of them
	// on every request with a body.
	for k := range data {
		if r.field(k) {
			continue
		}
		ignored = append(ignored, k)
		for _, f := range r.Fields {
			if strings.EqualFold(f.Name, k) {
				if shadows == nil {
					shadows = map[string]string{}
				}
				shadows[k] = f.Name
				break
			}
		}
	}
	sort.Strings(ignored)
	return ignored, shadows
}

// field reports whether the route reads a field of this exact name.
func (r Route) field(name string) bool {
	for _, f := range r.Fields {
		if f.Name == name {
			return true
		}
	}
	return false
}

// AsDeprecated marks a field as a deprecated alias.
func (f Field) AsDeprecated() Field { f.Deprecated = true; return f }
