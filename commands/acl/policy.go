// Package acl owns Vault's ACL policy language: it parses policy documents
// (HCL or JSON, as accepted by sys/policies/acl) into path rules, and it
// evaluates the merged rules of a token's policies against a request's path,
// operation and parameters with Vault's matching and precedence semantics.
package acl

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// ErrInvalidPolicy is wrapped by every error Parse and Format return, so the
// HTTP edge can map any of them to a 400 without inspecting the text.
var ErrInvalidPolicy = errors.New("acl: invalid policy")

// ParseError describes why a policy document was rejected and where.
type ParseError struct {
	Policy string // policy name; empty when formatting an unnamed document
	Line   int    // 1-based source line; 0 when the error has no position
	Msg    string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Policy != "" {
		fmt.Fprintf(&b, "policy %q: ", e.Policy)
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (e *ParseError) Unwrap() error { return ErrInvalidPolicy }

// Capability is a bit set of the capabilities a path rule grants.
type Capability uint16

// The capabilities Vault knows. The bit values follow Vault's own order so
// that bitmaps read the same when compared side by side with Vault's.
const (
	CapDeny Capability = 1 << iota
	CapCreate
	CapRead
	CapUpdate
	CapDelete
	CapList
	CapSudo
	CapPatch
	CapSubscribe
	CapRecover
)

// capabilityNames is sorted by name so Names yields what sys/capabilities
// returns without a sort at request time.
var capabilityNames = [...]struct {
	cap  Capability
	name string
}{
	{CapCreate, "create"},
	{CapDelete, "delete"},
	{CapDeny, "deny"},
	{CapList, "list"},
	{CapPatch, "patch"},
	{CapRead, "read"},
	{CapRecover, "recover"},
	{CapSubscribe, "subscribe"},
	{CapSudo, "sudo"},
	{CapUpdate, "update"},
}

// ParseCapability returns the capability with the given Vault name.
func ParseCapability(name string) (Capability, bool) {
	for _, c := range capabilityNames {
		if c.name == name {
			return c.cap, true
		}
	}
	return 0, false
}

// Names returns the Vault names of the capabilities in c, sorted.
func (c Capability) Names() []string {
	var out []string
	for _, n := range capabilityNames {
		if c&n.cap != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (c Capability) String() string { return strings.Join(c.Names(), ",") }

// legacyPolicy maps the pre-0.6 `policy = "..."` field onto capabilities the
// way Vault does, so old policy documents keep their meaning.
func legacyPolicy(name string) (Capability, bool) {
	const write = CapCreate | CapRead | CapUpdate | CapDelete | CapList
	switch name {
	case "deny":
		return CapDeny, true
	case "read":
		return CapRead | CapList, true
	case "write":
		return write, true
	case "sudo":
		return write | CapSudo, true
	}
	return 0, false
}

// Policy is a parsed ACL policy document.
type Policy struct {
	Name  string
	Raw   string // the document exactly as submitted, for sys/policies/acl reads
	Paths []PathRule
}

// PathRule is one `path` block. Blocks repeating a pattern are kept apart
// here and merged by New, exactly as Vault merges them across policies.
type PathRule struct {
	// Pattern is the path as written with leading slashes trimmed; a trailing
	// "*" makes it a prefix glob and a "+" segment matches any one segment.
	Pattern      string
	Capabilities Capability
	// AllowedParameters and DeniedParameters map lower-cased parameter names
	// (or "*") to permitted or forbidden values; an empty list means any.
	AllowedParameters  map[string][]any
	DeniedParameters   map[string][]any
	RequiredParameters []string
	MinWrappingTTL     time.Duration
	MaxWrappingTTL     time.Duration
	// SubscribeEventTypes are the event type globs the subscribe capability covers here
	// (Vault's subscribe_event_types); empty: every type.
	SubscribeEventTypes []string
	Line                int // line of the block's pattern label
}

// policySchema and pathSchema are read-only descriptions of the grammar.
var (
	policySchema = &hcl.BodySchema{
		// Vault tolerates a top-level name; the stored name comes from the
		// API path, so the attribute's value is ignored.
		Attributes: []hcl.AttributeSchema{{Name: "name"}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "path", LabelNames: []string{"pattern"}}},
	}
	pathSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "capabilities"},
			{Name: "policy"},
			{Name: "allowed_parameters"},
			{Name: "denied_parameters"},
			{Name: "required_parameters"},
			{Name: "min_wrapping_ttl"},
			{Name: "max_wrapping_ttl"},
			{Name: "subscribe_event_types"},
		},
	}
)

// Parse parses a Vault ACL policy document in HCL or, when its first
// non-space character is '{', JSON. Every rejection is a *ParseError that
// wraps ErrInvalidPolicy and, where the problem has a position, names its
// line: `policy "web": line 3: unknown capability "reed"`.
func Parse(name, text string) (*Policy, error) {
	p := parser{policy: name}
	trimmed := strings.TrimLeft(text, " \t\r\n")
	if strings.TrimSpace(trimmed) == "" {
		return nil, p.errorf(0, "empty policy")
	}
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	if trimmed[0] == '{' {
		file, diags = hcljson.Parse([]byte(text), name)
	} else {
		file, diags = hclsyntax.ParseConfig([]byte(text), name, hcl.InitialPos)
	}
	if err := p.diagError(diags); err != nil {
		return nil, err
	}
	content, diags := file.Body.Content(policySchema)
	if err := p.diagError(diags); err != nil {
		return nil, err
	}
	pol := &Policy{Name: name, Raw: text}
	for _, block := range content.Blocks {
		rule, err := p.pathBlock(block)
		if err != nil {
			return nil, err
		}
		pol.Paths = append(pol.Paths, rule)
	}
	return pol, nil
}

type parser struct {
	policy string
}

func (p parser) errorf(line int, format string, args ...any) error {
	return &ParseError{Policy: p.policy, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// diagError reports the earliest error in diags. HCL collects attributes in
// maps, so without picking by position the reported error would vary from
// run to run for a document with several mistakes.
func (p parser) diagError(diags hcl.Diagnostics) error {
	var first *hcl.Diagnostic
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if first == nil || diagBefore(d, first) {
			first = d
		}
	}
	if first == nil {
		return nil
	}
	msg := first.Summary
	if first.Detail != "" {
		msg += "; " + first.Detail
	}
	line := 0
	if first.Subject != nil {
		line = first.Subject.Start.Line
	}
	return &ParseError{Policy: p.policy, Line: line, Msg: msg}
}

func diagBefore(a, b *hcl.Diagnostic) bool {
	if a.Subject == nil || b.Subject == nil {
		return a.Subject != nil
	}
	return a.Subject.Start.Byte < b.Subject.Start.Byte
}

func (p parser) pathBlock(block *hcl.Block) (PathRule, error) {
	line := block.DefRange.Start.Line
	if len(block.LabelRanges) > 0 {
		line = block.LabelRanges[0].Start.Line
	}
	pattern := strings.TrimLeft(block.Labels[0], "/")
	if i := strings.IndexByte(pattern, '*'); i >= 0 && i != len(pattern)-1 {
		return PathRule{}, p.errorf(line, "path %q: glob \"*\" is only allowed as the last character", block.Labels[0])
	}
	rule := PathRule{Pattern: pattern, Line: line}

	content, diags := block.Body.Content(pathSchema)
	if err := p.diagError(diags); err != nil {
		return PathRule{}, err
	}
	attrs := make([]*hcl.Attribute, 0, len(content.Attributes))
	for _, a := range content.Attributes {
		attrs = append(attrs, a)
	}
	// Source order, so the first problem in the text is the one reported.
	sort.Slice(attrs, func(i, j int) bool { return attrs[i].Range.Start.Byte < attrs[j].Range.Start.Byte })

	for _, attr := range attrs {
		val, diags := attr.Expr.Value(nil)
		if err := p.diagError(diags); err != nil {
			return PathRule{}, err
		}
		if val.IsNull() {
			// Generated JSON often spells "unset" as null.
			continue
		}
		attrLine := attr.Range.Start.Line
		switch attr.Name {
		case "capabilities":
			items, err := p.stringList(attr, val)
			if err != nil {
				return PathRule{}, err
			}
			for _, it := range items {
				c, ok := ParseCapability(it.s)
				if !ok {
					return PathRule{}, p.errorf(it.line, "unknown capability %q", it.s)
				}
				rule.Capabilities |= c
			}
		case "policy":
			if val.Type() != cty.String || !val.IsKnown() {
				return PathRule{}, p.errorf(attrLine, "policy must be a string")
			}
			c, ok := legacyPolicy(val.AsString())
			if !ok {
				return PathRule{}, p.errorf(attrLine, "unknown policy %q (want read, write, deny or sudo)", val.AsString())
			}
			rule.Capabilities |= c
		case "allowed_parameters":
			m, err := p.paramMap(attr, val)
			if err != nil {
				return PathRule{}, err
			}
			rule.AllowedParameters = m
		case "denied_parameters":
			m, err := p.paramMap(attr, val)
			if err != nil {
				return PathRule{}, err
			}
			rule.DeniedParameters = m
		case "required_parameters":
			items, err := p.stringList(attr, val)
			if err != nil {
				return PathRule{}, err
			}
			for _, it := range items {
				rule.RequiredParameters = append(rule.RequiredParameters, strings.ToLower(it.s))
			}
		case "subscribe_event_types":
			items, err := p.stringList(attr, val)
			if err != nil {
				return PathRule{}, err
			}
			for _, it := range items {
				rule.SubscribeEventTypes = append(rule.SubscribeEventTypes, it.s)
			}
		case "min_wrapping_ttl":
			d, err := parseTTL(val)
			if err != nil {
				return PathRule{}, p.errorf(attrLine, "min_wrapping_ttl: %v", err)
			}
			rule.MinWrappingTTL = d
		case "max_wrapping_ttl":
			d, err := parseTTL(val)
			if err != nil {
				return PathRule{}, p.errorf(attrLine, "max_wrapping_ttl: %v", err)
			}
			rule.MaxWrappingTTL = d
		}
	}
	if rule.MinWrappingTTL > 0 && rule.MaxWrappingTTL > 0 && rule.MaxWrappingTTL < rule.MinWrappingTTL {
		return PathRule{}, p.errorf(line, "path %q: max_wrapping_ttl cannot be less than min_wrapping_ttl", block.Labels[0])
	}
	if rule.Capabilities&CapDeny != 0 {
		// Vault stops reading a denying block at the deny: nothing else in
		// it can take effect, and keeping it would only confuse merging.
		rule = PathRule{Pattern: rule.Pattern, Capabilities: CapDeny, Line: rule.Line}
	}
	return rule, nil
}

type lineString struct {
	s    string
	line int
}

// stringList reads a list of strings, keeping each element's line so an
// unknown capability is reported where it is written, not where the list
// starts.
func (p parser) stringList(attr *hcl.Attribute, val cty.Value) ([]lineString, error) {
	attrLine := attr.Range.Start.Line
	t := val.Type()
	if !val.IsWhollyKnown() || !(t.IsTupleType() || t.IsListType() || t.IsSetType()) {
		return nil, p.errorf(attrLine, "%s must be a list of strings", attr.Name)
	}
	lines := elementLines(attr.Expr, val.LengthInt(), attrLine)
	out := make([]lineString, 0, val.LengthInt())
	i := 0
	for it := val.ElementIterator(); it.Next(); i++ {
		_, ev := it.Element()
		if ev.IsNull() || ev.Type() != cty.String {
			return nil, p.errorf(lines[i], "%s must be a list of strings", attr.Name)
		}
		out = append(out, lineString{s: ev.AsString(), line: lines[i]})
	}
	return out, nil
}

func elementLines(expr hcl.Expression, n, fallback int) []int {
	lines := make([]int, n)
	exprs, diags := hcl.ExprList(expr)
	for i := range lines {
		lines[i] = fallback
		if !diags.HasErrors() && len(exprs) == n {
			lines[i] = exprs[i].Range().Start.Line
		}
	}
	return lines
}

// paramMap reads allowed_parameters / denied_parameters. Vault lower-cases
// parameter names here and at check time, so matching is case-insensitive.
func (p parser) paramMap(attr *hcl.Attribute, val cty.Value) (map[string][]any, error) {
	attrLine := attr.Range.Start.Line
	t := val.Type()
	if !val.IsWhollyKnown() || !(t.IsObjectType() || t.IsMapType()) {
		return nil, p.errorf(attrLine, "%s must be a map of parameter names to lists of values", attr.Name)
	}
	keyLines := map[string]int{}
	if pairs, diags := hcl.ExprMap(attr.Expr); !diags.HasErrors() {
		for _, kv := range pairs {
			if k, d := kv.Key.Value(nil); !d.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() {
				keyLines[k.AsString()] = kv.Key.Range().Start.Line
			}
		}
	}
	out := make(map[string][]any, val.LengthInt())
	for it := val.ElementIterator(); it.Next(); {
		k, v := it.Element()
		key := k.AsString()
		line := attrLine
		if l, ok := keyLines[key]; ok {
			line = l
		}
		vt := v.Type()
		if v.IsNull() || !(vt.IsTupleType() || vt.IsListType() || vt.IsSetType()) {
			return nil, p.errorf(line, "%s: value for %q must be a list", attr.Name, key)
		}
		g, err := ctyToGo(v)
		if err != nil {
			return nil, p.errorf(line, "%s: value for %q: %v", attr.Name, key, err)
		}
		values := g.([]any)
		lk := strings.ToLower(key)
		if prev, ok := out[lk]; ok {
			// Two spellings of one name: union them as a merge would.
			if len(prev) == 0 || len(values) == 0 {
				values = []any{}
			} else {
				values = append(prev, values...)
			}
		}
		out[lk] = values
	}
	return out, nil
}

// ctyToGo converts a literal HCL/JSON value into the plain Go shapes a JSON
// request body decodes into, so policy values compare with request values.
func ctyToGo(v cty.Value) (any, error) {
	if v.IsNull() {
		return nil, nil
	}
	if !v.IsKnown() {
		return nil, errors.New("value must be a literal")
	}
	t := v.Type()
	switch {
	case t == cty.String:
		return v.AsString(), nil
	case t == cty.Number:
		f, _ := v.AsBigFloat().Float64()
		return f, nil
	case t == cty.Bool:
		return v.True(), nil
	case t.IsTupleType() || t.IsListType() || t.IsSetType():
		out := make([]any, 0, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			g, err := ctyToGo(ev)
			if err != nil {
				return nil, err
			}
			out = append(out, g)
		}
		return out, nil
	case t.IsObjectType() || t.IsMapType():
		out := make(map[string]any, v.LengthInt())
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			g, err := ctyToGo(ev)
			if err != nil {
				return nil, err
			}
			out[k.AsString()] = g
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported value of type %s", t.FriendlyName())
}

// parseTTL follows Vault's parseutil.ParseDurationSecond: a bare number is
// seconds, a string is a Go duration, an integer, or an integer of days.
func parseTTL(v cty.Value) (time.Duration, error) {
	if !v.IsKnown() {
		return 0, errors.New("must be a literal duration")
	}
	var secs float64
	switch v.Type() {
	case cty.Number:
		secs, _ = v.AsBigFloat().Float64()
	case cty.String:
		s := strings.TrimSpace(v.AsString())
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			secs = float64(n)
			break
		}
		if days, ok := strings.CutSuffix(s, "d"); ok {
			n, err := strconv.ParseInt(days, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			secs = float64(n) * 86400
			break
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("negative duration %q", s)
		}
		return d, nil
	default:
		return 0, errors.New("must be a duration string or a number of seconds")
	}
	if secs < 0 {
		return 0, errors.New("duration must not be negative")
	}
	if math.IsNaN(secs) || secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, errors.New("duration out of range")
	}
	return time.Duration(secs * float64(time.Second)), nil
}
