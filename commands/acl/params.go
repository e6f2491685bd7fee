package acl

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
)

// paramRules is a compiled allowed_parameters or denied_parameters map.
type paramRules struct {
	byKey   map[string]valueSet
	star    valueSet // the "*" entry, which covers every name not listed
	hasStar bool
}

// valueSet is the compiled value list of one parameter.
type valueSet struct {
	any    bool // the list was empty or held "*": every value matches
	values []any
}

func compileParams(m map[string][]any) paramRules {
	var pr paramRules
	if len(m) == 0 {
		return pr
	}
	pr.byKey = make(map[string]valueSet, len(m))
	for k, vals := range m {
		vs := compileValues(vals)
		if k == "*" {
			pr.star, pr.hasStar = vs, true
			continue
		}
		pr.byKey[k] = vs
	}
	return pr
}

// compileValues treats a "*" value as matching anything. Vault's glob
// matcher compares one-character patterns literally, so there "*" matches
// only the string "*"; nobody writes that on purpose, and reading it as
// "any value" is what the documentation's glob examples lead operators to
// expect, and errs towards denying when used in denied_parameters.
func compileValues(vals []any) valueSet {
	if len(vals) == 0 {
		return valueSet{any: true}
	}
	for _, v := range vals {
		if s, ok := v.(string); ok && s == "*" {
			return valueSet{any: true}
		}
	}
	return valueSet{values: vals}
}

func (p *paramRules) set() bool { return len(p.byKey) > 0 || p.hasStar }

// denies reports whether a request parameter hits a denied entry, either
// its own name or "*" (which Vault applies to every parameter).
func (p *paramRules) denies(name string, v any) bool {
	if vs, ok := p.byKey[strings.ToLower(name)]; ok && vs.match(v) {
		return true
	}
	return p.hasStar && p.star.match(v)
}

// allows reports whether a request parameter is permitted. A listed name is
// judged by its own values only; "*" covers the names that are not listed.
func (p *paramRules) allows(name string, v any) bool {
	if vs, ok := p.byKey[strings.ToLower(name)]; ok {
		return vs.match(v)
	}
	return p.hasStar && p.star.match(v)
}

func (vs *valueSet) match(v any) bool {
	if vs.any {
		return true
	}
	for _, el := range vs.values {
		if valueMatches(el, v) {
			return true
		}
	}
	return false
}

// valueMatches compares a policy value with a request value the way Vault's
// valueInSlice does: strings by glob, nil only with nil, anything else by
// equality. Numbers compare by value, because policies decode numbers as
// float64 while request bodies may carry json.Number or Go integers.
func valueMatches(el, v any) bool {
	if el == nil || v == nil {
		return el == nil && v == nil
	}
	if pat, ok := el.(string); ok {
		s, ok := v.(string)
		return ok && globMatch(pat, s)
	}
	return valueEqual(el, v)
}

// globMatch is Vault's strutil.GlobbedStringsMatch: a leading and/or
// trailing "*" turns the pattern into a suffix, prefix or substring test.
func globMatch(pat, s string) bool {
	if len(pat) < 2 {
		return pat == s
	}
	pre, suf := pat[0] == '*', pat[len(pat)-1] == '*'
	switch {
	case pre && suf:
		return strings.Contains(s, pat[1:len(pat)-1])
	case pre:
		return strings.HasSuffix(s, pat[1:])
	case suf:
		return strings.HasPrefix(s, pat[:len(pat)-1])
	}
	return pat == s
}

func valueEqual(a, b any) bool {
	if fa, ok := toFloat(a); ok {
		fb, ok := toFloat(b)
		return ok && fa == fb
	}
	switch av := a.(type) {
	case nil:
		return b == nil
	case string:
		bv, ok := b.(string)
		return ok && av == bv
	case bool:
		bv, ok := b.(bool)
		return ok && av == bv
	case []any:
		switch bv := b.(type) {
		case []any:
			if len(av) != len(bv) {
				return false
			}
			for i := range av {
				if !valueEqual(av[i], bv[i]) {
					return false
				}
			}
			return true
		case []string:
			if len(av) != len(bv) {
				return false
			}
			for i := range av {
				if s, ok := av[i].(string); !ok || s != bv[i] {
					return false
				}
			}
			return true
		}
		return false
	case map[string]any:
		bv, ok := b.(map[string]any)
		if !ok || len(av) != len(bv) {
			return false
		}
		for k, x := range av {
			y, ok := bv[k]
			if !ok || !valueEqual(x, y) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(a, b)
}

func toFloat(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int8:
		return float64(n), true
	case int16:
		return float64(n), true
	case int32:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint:
		return float64(n), true
	case uint8:
		return float64(n), true
	case uint16:
		return float64(n), true
	case uint32:
		return float64(n), true
	case uint64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil && !math.IsInf(f, 0)
	}
	return 0, false
}
