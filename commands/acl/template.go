package acl

import (
	"strings"
)

// Identity is what a templated policy may name about the token's entity (Vault's
// identity.entity.* and identity.groups.* parameters).
type Identity struct {
	EntityID   string
	EntityName string
	EntityMeta map[string]string
	Aliases    map[string]IdentityObject // by mount accessor
	Groups     []IdentityObject          // every group the entity belongs to, inherited included
}

// IdentityObject is an alias or a group as templates see it.
type IdentityObject struct {
	ID, Name string
	Metadata map[string]string
}

// HasTemplates reports whether a policy document uses identity templates.
func HasTemplates(text string) bool { return strings.Contains(text, "{{") }

// Templated returns p with its path patterns filled in for one identity. A rule whose pattern
// names something the identity lacks (no entity, a missing metadata key, an alias on another
// mount, a group it is not in) is dropped, as Vault drops it: it grants nothing rather than
// something unintended. So is a rule into which a value would bring glob characters ("*",
// "+"), which would widen the rule beyond the one identity it was written for.
func (p *Policy) Templated(id *Identity) *Policy {
	out := &Policy{Name: p.Name, Raw: p.Raw}
	for _, r := range p.Paths {
		if !strings.Contains(r.Pattern, "{{") {
			out.Paths = append(out.Paths, r)
			continue
		}
		pat, ok := fillTemplate(r.Pattern, id)
		if !ok {
			continue
		}
		r.Pattern = pat
		out.Paths = append(out.Paths, r)
	}
	return out
}

func fillTemplate(s string, id *Identity) (string, bool) {
	var b strings.Builder
	for {
		i := strings.Index(s, "{{")
		if i < 0 {
			b.WriteString(s)
			return b.String(), true
		}
		j := strings.Index(s[i:], "}}")
		if j < 0 {
			return "", false
		}
		v, ok := resolve(strings.TrimSpace(s[i+2:i+j]), id)
		if !ok || v == "" || strings.ContainsAny(v, "*+{}") {
			return "", false
		}
		b.WriteString(s[:i])
		b.WriteString(v)
		s = s[i+j+2:]
	}
}

// resolve answers one template parameter.
func resolve(param string, id *Identity) (string, bool) {
	if id == nil || id.EntityID == "" {
		return "", false
	}
	if rest, ok := strings.CutPrefix(param, "identity.entity."); ok {
		switch {
		case rest == "id":
			return id.EntityID, true
		case rest == "name":
			return id.EntityName, true
		case strings.HasPrefix(rest, "metadata."):
			v, ok := id.EntityMeta[strings.TrimPrefix(rest, "metadata.")]
			return v, ok
		case strings.HasPrefix(rest, "aliases."):
			acc, field, ok := strings.Cut(strings.TrimPrefix(rest, "aliases."), ".")
			if !ok {
				return "", false
			}
			a, ok := id.Aliases[acc]
			if !ok {
				return "", false
			}
			return objectField(a, field, "id", "name")
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(param, "identity.groups."); ok {
		by, rest, ok := strings.Cut(rest, ".")
		if !ok || (by != "ids" && by != "names") {
			return "", false
		}
		// The key is everything up to the field; group names may hold dots, so the field is
		// found from the end.
		for _, field := range []string{".id", ".name"} {
			if key, ok := strings.CutSuffix(rest, field); ok {
				return groupField(id, by, key, field[1:])
			}
		}
		if i := strings.LastIndex(rest, ".metadata."); i >= 0 {
			return groupField(id, by, rest[:i], rest[i+1:])
		}
		return "", false
	}
	return "", false
}

func groupField(id *Identity, by, key, field string) (string, bool) {
	for _, g := range id.Groups {
		if (by == "ids" && g.ID == key) || (by == "names" && g.Name == key) {
			return objectField(g, field, "id", "name")
		}
	}
	return "", false
}

func objectField(o IdentityObject, field, idName, nameName string) (string, bool) {
	switch {
	case field == idName:
		return o.ID, true
	case field == nameName:
		return o.Name, true
	case strings.HasPrefix(field, "metadata."):
		v, ok := o.Metadata[strings.TrimPrefix(field, "metadata.")]
		return v, ok
	}
	return "", false
}
