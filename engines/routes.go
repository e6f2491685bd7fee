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
	best, bestScore := -1, -1
	var bestParams map[string]string
	for i, r := range routes {
		params, score, ok := matchPattern(r.Pattern, path)
		if ok && score > bestScore {
			best, bestScore, bestParams = i, score, params
		}
	}
	if best < 0 {
		return Route{}, nil, false
	}
	return routes[best], bestParams, true
}

// matchPattern scores a match by its number of literal segments.
func matchPattern(pattern, path string) (map[string]string, int, bool) {
	pp := strings.Split(pattern, "/")
	if pattern == "" {
		pp = nil
	}
	var segs []string
	if path != "" {
		segs = strings.Split(path, "/")
	}
	params := map[string]string{}
	score := 0
	for i, p := range pp {
		if name, ok := strings.CutPrefix(p, "{"); ok {
			name = strings.TrimSuffix(name, "}")
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				// The rest of the path, less the literal segments that follow the parameter
				// ("mounts/{path...}/tune"); it may hold slashes, never nothing.
				tail := pp[i+1:]
				if len(segs)-i <= len(tail) {
					return nil, 0, false
				}
				end := len(segs) - len(tail)
				for j, lit := range tail {
					if strings.HasPrefix(lit, "{") || segs[end+j] != lit {
						return nil, 0, false
					}
					score++
				}
				params[rest] = strings.Join(segs[i:end], "/")
				return params, score, true
			}
			if i >= len(segs) || segs[i] == "" {
				return nil, 0, false
			}
			params[name] = segs[i]
			continue
		}
		if i >= len(segs) || segs[i] != p {
			return nil, 0, false
		}
		score++
	}
	return params, score, len(segs) == len(pp)
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
	known := map[string]bool{}
	lower := map[string]string{}
	for _, f := range r.Fields {
		known[f.Name] = true
		lower[strings.ToLower(f.Name)] = f.Name
	}
	for k := range data {
		if known[k] {
			continue
		}
		ignored = append(ignored, k)
		if f, ok := lower[strings.ToLower(k)]; ok {
			if shadows == nil {
				shadows = map[string]string{}
			}
			shadows[k] = f
		}
	}
	sort.Strings(ignored)
	return ignored, shadows
}

// AsDeprecated marks a field as a deprecated alias.
func (f Field) AsDeprecated() Field { f.Deprecated = true; return f }
