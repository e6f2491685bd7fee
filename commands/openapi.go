package commands

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ledger-secrets/ledger/engines"
	"github.com/ledger-secrets/ledger/projections/mount"
)

// Help (`?help=1`, `vault path-help`) and sys/internal/specs/openapi are both generated from
// the route descriptions (engines.Route) the backends give: one source, so what help says a
// path takes is what the unknown-field warning checks.

// openAPIVersion is the OpenAPI version Vault serves.
const openAPIVersion = "3.0.2"

func openAPIDoc() map[string]any {
	return map[string]any{
		"openapi": openAPIVersion,
		"info": map[string]any{
			"title":       "Ledger API",
			"description": "HTTP API of Ledger, which speaks HashiCorp Vault's API. All API routes are prefixed with `/v1/`.",
			"version":     Version,
			"license":     map[string]any{"name": "Mozilla Public License 2.0", "url": "https://www.mozilla.org/en-US/MPL/2.0"},
		},
		"paths":      map[string]any{},
		"components": map[string]any{"schemas": map[string]any{}},
	}
}

// mountRoutes is a mount's path prefix ("secret/", "sys/") with its backend's routes.
type mountRoutes struct {
	prefix    string
	mountType string
	routes    []engines.Route
	special   engines.PathsSpecial
}

func (c *Core) routesOf(st *unsealed, m mount.Entry) (mountRoutes, bool) {
	b, err := c.backend(st, m)
	if err != nil {
		return mountRoutes{}, false
	}
	return describeBackend(m.Path, m.Type, b)
}

func describeBackend(prefix, typ string, b engines.Backend) (mountRoutes, bool) {
	d, ok := b.(engines.Describer)
	if !ok {
		return mountRoutes{}, false
	}
	sp, _ := b.(engines.PathsSpecial)
	return mountRoutes{prefix: prefix, mountType: typ, routes: d.Routes(), special: sp}, true
}

// addPaths puts the routes of one mount into doc's paths and schemas.
func (mr mountRoutes) addPaths(doc map[string]any, only func(engines.Route) bool) {
	paths := doc["paths"].(map[string]any)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	for _, r := range mr.routes {
		if only != nil && !only(r) {
			continue
		}
		apiPath := "/" + mr.prefix + openAPIPattern(r.Pattern)
		rel := strings.TrimSuffix(strings.ReplaceAll(r.Pattern, "...", ""), "/")
		item := map[string]any{"description": r.Summary}
		var params []any
		var body []engines.Field
		for _, f := range r.Fields {
			if f.In == "path" {
				params = append(params, map[string]any{"name": f.Name, "description": f.Description, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			} else {
				body = append(body, f)
			}
		}
		if params != nil {
			item["parameters"] = params
		}
		if mr.special != nil {
			if matchAny(mr.special.Sudo(), rel) {
				item["x-vault-sudo"] = true
			}
			if matchAny(mr.special.Unauthenticated(), rel) {
				item["x-vault-unauthenticated"] = true
			}
		}
		opID := operationID(mr.prefix, r.Pattern)
		tags := []any{tagOf(mr.prefix, mr.mountType)}
		var listItem map[string]any
		for _, op := range r.Operations {
			o := map[string]any{"summary": r.Summary, "tags": tags, "responses": map[string]any{"200": map[string]any{"description": "OK"}}}
			if r.Description != "" {
				o["description"] = r.Description
			}
			switch op {
			case engines.OpRead:
				o["operationId"] = opID + "-read"
				if q := queryParams(body); len(q) > 0 {
					o["parameters"] = q
				}
				item["get"] = o
			case engines.OpList:
				o["operationId"] = opID + "-list"
				o["parameters"] = []any{map[string]any{"name": "list", "description": "Must be set to `true`", "in": "query", "required": true, "schema": map[string]any{"type": "string", "enum": []any{"true"}}}}
				if _, read := item["get"]; read || r.Takes(engines.OpRead) {
					// Vault gives a path that is read and listed a second entry, ending in "/".
					listItem = map[string]any{"description": r.Summary, "get": o}
					if params != nil {
						listItem["parameters"] = params
					}
				} else {
					item["get"] = o
				}
			case engines.OpUpdate, engines.OpCreate:
				o["operationId"] = opID + "-write"
				if len(body) > 0 {
					name := schemaName(opID) + "Request"
					schemas[name] = schemaOf(body)
					o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + name}}}}
				}
				item["post"] = o
			case engines.OpPatch:
				o["operationId"] = opID + "-patch"
				if len(body) > 0 {
					o["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/merge-patch+json": map[string]any{"schema": schemaOf(body)}}}
				}
				item["patch"] = o
			case engines.OpDelete:
				o["operationId"] = opID + "-delete"
				o["responses"] = map[string]any{"204": map[string]any{"description": "empty body"}}
				item["delete"] = o
			}
		}
		paths[apiPath] = item
		if listItem != nil {
			paths[strings.TrimSuffix(apiPath, "/")+"/"] = listItem
		}
	}
}

// openAPIPattern turns "data/{path...}" into "data/{path}".
func openAPIPattern(p string) string { return strings.ReplaceAll(p, "...}", "}") }

func operationID(prefix, pattern string) string {
	s := strings.Trim(prefix, "/") + "-" + pattern
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.Trim(b.String(), "-")
}

func schemaName(opID string) string {
	var b strings.Builder
	for _, part := range strings.Split(opID, "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

func tagOf(prefix, typ string) string {
	switch {
	case typ == "system":
		return "system"
	case strings.HasPrefix(prefix, "auth/"):
		return "auth"
	}
	return "secrets"
}

func typeSchema(t string) map[string]any {
	switch t {
	case "int":
		return map[string]any{"type": "integer"}
	case "number":
		return map[string]any{"type": "number"}
	case "bool":
		return map[string]any{"type": "boolean"}
	case "duration":
		return map[string]any{"type": "string", "format": "duration"}
	case "[]string":
		return map[string]any{"type": "array", "items": map[string]any{"type": "string"}}
	case "[]int":
		return map[string]any{"type": "array", "items": map[string]any{"type": "integer"}}
	case "[]object":
		return map[string]any{"type": "array", "items": map[string]any{"type": "object"}}
	case "map", "object":
		return map[string]any{"type": "object"}
	}
	return map[string]any{"type": "string"}
}

func schemaOf(fields []engines.Field) map[string]any {
	props := map[string]any{}
	for _, f := range fields {
		s := typeSchema(f.Type)
		s["description"] = f.Description
		if f.Deprecated {
			s["deprecated"] = true
		}
		props[f.Name] = s
	}
	return map[string]any{"type": "object", "properties": props}
}

func queryParams(fields []engines.Field) []any {
	var out []any
	for _, f := range fields {
		out = append(out, map[string]any{"name": f.Name, "description": f.Description, "in": "query", "schema": typeSchema(f.Type)})
	}
	return out
}

// helpText renders one route as Vault's path-help does: the request, the matching route, the
// summary, the parameters and the description.
func helpText(path string, r engines.Route) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Request:        %s\nMatching Route: %s\n\n%s\n", path, openAPIPattern(r.Pattern), r.Summary)
	fields := append([]engines.Field(nil), r.Fields...)
	sort.SliceStable(fields, func(i, j int) bool { return fields[i].Name < fields[j].Name })
	if len(fields) > 0 {
		b.WriteString("\n## PARAMETERS\n")
		for _, f := range fields {
			where := ""
			if f.In == "path" {
				where = ", in the path"
			}
			dep := ""
			if f.Deprecated {
				dep = " (deprecated)"
			}
			fmt.Fprintf(&b, "\n    %s (%s%s)%s\n\n        %s\n", f.Name, f.Type, where, dep, f.Description)
		}
	}
	ops := make([]string, 0, len(r.Operations))
	for _, o := range r.Operations {
		ops = append(ops, string(o))
	}
	fmt.Fprintf(&b, "\n## OPERATIONS\n\n    %s\n", strings.Join(ops, ", "))
	if r.Description != "" {
		fmt.Fprintf(&b, "\n## DESCRIPTION\n\n%s\n", r.Description)
	}
	return b.String()
}

// mountHelp renders a mount's root: every path it serves.
func mountHelp(mr mountRoutes) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## DESCRIPTION\n\nThe %s backend mounted at %s.\n\n## PATHS\n\nThe following paths are supported by this backend. To view help for any of the paths below, use the help command with any route matching the path pattern.\n", mr.mountType, mr.prefix)
	for _, r := range mr.routes {
		fmt.Fprintf(&b, "\n    %s\n        %s\n", openAPIPattern(r.Pattern), r.Summary)
	}
	return b.String()
}

// help answers `?help=1` on path: the matching route's help and OpenAPI, never data.
func (c *Core) help(rt route, path string) (*engines.Response, error) {
	mr, ok := describeBackend(rt.mount.Path, rt.mount.Type, rt.backend)
	if !ok {
		return nil, engines.Errorf(engines.ErrNotFound, "no help for %q: the %s engine does not describe its paths", path, rt.mount.Type)
	}
	doc := openAPIDoc()
	var text string
	if strings.TrimSuffix(rt.rel, "/") == "" {
		text = mountHelp(mr)
		mr.addPaths(doc, nil)
	} else {
		r, _, ok := engines.Match(mr.routes, rt.rel)
		if !ok {
			return nil, engines.Errorf(engines.ErrNotFound, "unsupported path")
		}
		text = helpText(rt.rel, r)
		mr.addPaths(doc, func(x engines.Route) bool { return x.Pattern == r.Pattern })
	}
	return &engines.Response{Data: map[string]any{RawBody: map[string]any{"help": text, "openapi": doc, "see_also": nil}, RawContentType: "application/json", RawStatusCode: 200}}, nil
}

// openAPI is GET sys/internal/specs/openapi: every path of every mount the caller can touch,
// and sys/.
func (s *sysBackend) openAPI(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	doc := openAPIDoc()
	if mr, ok := describeBackend("sys/", "system", s); ok {
		mr.addPaths(doc, nil)
	}
	a := s.c.aclForCaller(s.st, req.Caller)
	for _, m := range s.st.mounts.List() {
		if !a.IsRoot() && !a.HasAccessUnder(m.Path) {
			continue
		}
		if mr, ok := s.c.routesOf(s.st, m); ok {
			mr.addPaths(doc, nil)
		}
	}
	return &engines.Response{Data: map[string]any{RawBody: doc, RawContentType: "application/json", RawStatusCode: 200}}, nil
}
