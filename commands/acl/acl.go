package acl

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// Operation is the kind of request being authorised.
type Operation uint8

// Operations start at one so that a zero Operation is invalid and denied.
const (
	Create Operation = iota + 1
	Read
	Update
	Patch
	Delete
	List
)

func (o Operation) String() string {
	switch o {
	case Create:
		return "create"
	case Read:
		return "read"
	case Update:
		return "update"
	case Patch:
		return "patch"
	case Delete:
		return "delete"
	case List:
		return "list"
	}
	return "operation(" + strconv.Itoa(int(o)) + ")"
}

func (o Operation) capability() Capability {
	switch o {
	case Create:
		return CapCreate
	case Read:
		return CapRead
	case Update:
		return CapUpdate
	case Patch:
		return CapPatch
	case Delete:
		return CapDelete
	case List:
		return CapList
	}
	return 0
}

// Decision is the outcome of an authorisation check.
type Decision struct {
	Allowed bool
	// Sudo reports whether the matched rule grants sudo, which root-protected
	// endpoints require in addition to the operation's own capability.
	Sudo   bool
	Reason string
	// MinWrappingTTL and MaxWrappingTTL are the matched rule's bounds on response wrapping
	// (0: none). Either one makes wrapping mandatory; the pipeline enforces them.
	MinWrappingTTL time.Duration
	MaxWrappingTTL time.Duration
}

const (
	reasonRoot    = "root policy"
	reasonNoMatch = "no policy grants access to this path"
	reasonBadOp   = "unsupported operation"
)

// ACL is the merged, precompiled view of a token's policies. It is
// immutable after New and safe for concurrent use.
type ACL struct {
	root  bool
	exact map[string]*rule
	// wild holds glob and "+" rules sorted from highest to lowest priority,
	// so the first match is the winner and lookups never sort or allocate.
	wild []*rule
}

// rule is the merge of every PathRule sharing one pattern.
type rule struct {
	pattern  string
	caps     Capability
	allowed  paramRules
	denied   paramRules
	required []string
	minWrap  time.Duration
	maxWrap  time.Duration
	subTypes []string // subscribe_event_types; nil: every type

	// Matching data for wildcard rules, derived once from the pattern.
	literal   string   // text before the first wildcard: every match starts with it
	segs      []string // pattern split on "/" (glob stripped); nil for a plain prefix
	isPrefix  bool     // pattern ends in "*"
	firstWC   int      // byte offset of the first "+" segment or of the glob
	wildcards int      // number of "+" segments

	// Reasons are built once so that granting a request does not allocate.
	grantReason, denyReason, noCapReason string
}

// New merges policies into an ACL. Nil policies are ignored. A policy named
// "root" makes the ACL root: everything is allowed, including sudo.
//
// Rules for one pattern merge as in Vault: capabilities union unless any of
// them denies, in which case the pattern grants nothing; allowed and denied
// parameter values union, with an empty list (any value) absorbing the rest;
// required parameters union; the smaller wrapping TTL bounds win.
func New(policies ...*Policy) *ACL {
	a := &ACL{exact: make(map[string]*rule)}
	merged := make(map[string]*builder)
	var order []string
	for _, p := range policies {
		if p == nil {
			continue
		}
		if p.Name == "root" {
			a.root = true
		}
		for i := range p.Paths {
			pr := &p.Paths[i]
			b, ok := merged[pr.Pattern]
			if !ok {
				merged[pr.Pattern] = newBuilder(pr)
				order = append(order, pr.Pattern)
				continue
			}
			b.merge(pr)
		}
	}
	for _, pattern := range order {
		r := merged[pattern].compile()
		if r.segs == nil && !r.isPrefix {
			a.exact[pattern] = r
		} else {
			a.wild = append(a.wild, r)
		}
	}
	sort.Slice(a.wild, func(i, j int) bool { return lowerPriority(a.wild[j], a.wild[i]) })
	return a
}

// lowerPriority reports whether x loses to y when both match a path. It is
// Vault's ordering (vault/acl.go, CheckAllowedFromNonExactPaths, and the
// "Priority matching" section of Vault's policy documentation):
//
//  1. the first wildcard ("+") or glob ("*") occurring earlier loses;
//  2. a pattern ending in "*" loses to one that does not;
//  3. more "+" segments lose;
//  4. a shorter pattern (glob stripped) loses;
//  5. a lexicographically smaller pattern loses.
//
// Every input is a property of the pattern alone, never of the request, which
// is why New can sort once and lookups can stop at the first match.
func lowerPriority(x, y *rule) bool {
	if x.firstWC != y.firstWC {
		return x.firstWC < y.firstWC
	}
	if x.isPrefix != y.isPrefix {
		return x.isPrefix
	}
	if x.wildcards != y.wildcards {
		return x.wildcards > y.wildcards
	}
	xp, yp := strings.TrimSuffix(x.pattern, "*"), strings.TrimSuffix(y.pattern, "*")
	if len(xp) != len(yp) {
		return len(xp) < len(yp)
	}
	return xp < yp
}

// IsRoot reports whether the ACL includes the root policy.
func (a *ACL) IsRoot() bool { return a != nil && a.root }

// Allowed decides whether op on path with the given request parameters is
// permitted. A nil ACL denies everything.
func (a *ACL) Allowed(op Operation, path string, params map[string]any) Decision {
	if a == nil {
		return Decision{Reason: reasonNoMatch}
	}
	if a.root {
		return Decision{Allowed: true, Sudo: true, Reason: reasonRoot}
	}
	need := op.capability()
	if need == 0 {
		return Decision{Reason: reasonBadOp}
	}
	r := a.lookup(strings.TrimLeft(path, "/"), op == List)
	if r == nil {
		return Decision{Reason: reasonNoMatch}
	}
	if r.caps&CapDeny != 0 {
		return Decision{Reason: r.denyReason}
	}
	d := Decision{Sudo: r.caps&CapSudo != 0, MinWrappingTTL: r.minWrap, MaxWrappingTTL: r.maxWrap}
	if r.caps&need == 0 {
		d.Reason = r.noCapReason
		return d
	}
	if r.minWrap > 0 && r.maxWrap > 0 && r.maxWrap < r.minWrap {
		// Each block is checked on parse; only a merge can produce this, and
		// Vault refuses rather than guess which bound was meant.
		d.Reason = "path " + strconv.Quote(r.pattern) + " has conflicting wrapping TTL bounds"
		return d
	}
	switch op {
	case Create, Update, Patch:
		if reason, ok := r.checkParams(params); !ok {
			d.Reason = reason
			return d
		}
	}
	d.Allowed = true
	d.Reason = r.grantReason
	return d
}

// Capabilities returns what sys/capabilities reports for path: ["root"] for
// a root ACL, ["deny"] when nothing matches or the match denies, otherwise
// the matched rule's capability names, sorted.
func (a *ACL) Capabilities(path string) []string {
	if a == nil {
		return []string{"deny"}
	}
	if a.root {
		return []string{"root"}
	}
	r := a.lookup(strings.TrimLeft(path, "/"), false)
	if r == nil || r.caps == 0 || r.caps&CapDeny != 0 {
		return []string{"deny"}
	}
	return r.caps.Names()
}

// SubscribeEventTypes returns the event type globs the rule governing path lets a subscriber
// receive (its subscribe_event_types), and whether that rule grants subscribe at all. A nil
// list with true means every type; root is every type.
func (a *ACL) SubscribeEventTypes(path string) ([]string, bool) {
	if a == nil {
		return nil, false
	}
	if a.root {
		return nil, true
	}
	r := a.lookup(strings.TrimLeft(path, "/"), false)
	if r == nil || r.caps&CapDeny != 0 || r.caps&CapSubscribe == 0 {
		return nil, false
	}
	return r.subTypes, true
}

// lookup finds the rule governing path: an exact rule first, then the
// highest-priority wildcard rule. For list, Vault also lets a rule written
// without the trailing slash govern "dir/" (and, since VAULT-3825, the same
// for wildcard rules), so the trimmed path is tried as well.
func (a *ACL) lookup(path string, list bool) *rule {
	if r, ok := a.exact[path]; ok {
		return r
	}
	trimmed := path
	if list && strings.HasSuffix(path, "/") {
		trimmed = path[:len(path)-1]
		if r, ok := a.exact[trimmed]; ok {
			return r
		}
	}
	for _, r := range a.wild {
		if r.match(path) || (len(trimmed) != len(path) && r.match(trimmed)) {
			return r
		}
	}
	return nil
}

// match reports whether a wildcard rule covers path, with Vault's segment
// semantics: "+" stands for exactly one segment (possibly empty), the last
// segment of a glob pattern matches by prefix, and a glob pattern lets the
// path continue past its last segment.
func (r *rule) match(path string) bool {
	if !strings.HasPrefix(path, r.literal) {
		return false
	}
	if r.segs == nil {
		return true
	}
	rest := path
	last := len(r.segs) - 1
	for i, seg := range r.segs {
		part, tail, more := strings.Cut(rest, "/")
		switch {
		case seg == "+", seg == part:
		case r.isPrefix && i == last && strings.HasPrefix(part, seg):
		default:
			return false
		}
		if i == last {
			return r.isPrefix || !more
		}
		if !more {
			return false // the path has fewer segments than the pattern
		}
		rest = tail
	}
	return true
}

func (r *rule) checkParams(params map[string]any) (string, bool) {
	for _, name := range r.required {
		if !hasParam(params, name) {
			return "missing required parameter " + strconv.Quote(name), false
		}
	}
	if len(params) == 0 {
		return "", true
	}
	if r.denied.set() {
		for k, v := range params {
			if r.denied.denies(k, v) {
				return "parameter " + strconv.Quote(k) + " denied by path " + strconv.Quote(r.pattern), false
			}
		}
	}
	if !r.allowed.set() {
		return "", true
	}
	for k, v := range params {
		if !r.allowed.allows(k, v) {
			return "parameter " + strconv.Quote(k) + " not allowed by path " + strconv.Quote(r.pattern), false
		}
	}
	return "", true
}

func hasParam(params map[string]any, lowerName string) bool {
	if _, ok := params[lowerName]; ok {
		return true
	}
	for k := range params {
		if strings.EqualFold(k, lowerName) {
			return true
		}
	}
	return false
}

// builder accumulates PathRules for one pattern in Vault's merge order
// before they are compiled into a rule.
type builder struct {
	pattern  string
	caps     Capability
	allowed  map[string][]any
	denied   map[string][]any
	required []string
	minWrap  time.Duration
	maxWrap  time.Duration
	subTypes []string // union of the subscribe-granting blocks' subscribe_event_types
	subAll   bool     // some subscribe-granting block lists no types: every type
}

func newBuilder(pr *PathRule) *builder {
	b := &builder{
		pattern:  pr.Pattern,
		caps:     pr.Capabilities,
		allowed:  cloneParams(pr.AllowedParameters),
		denied:   cloneParams(pr.DeniedParameters),
		required: append([]string(nil), pr.RequiredParameters...),
		minWrap:  pr.MinWrappingTTL,
		maxWrap:  pr.MaxWrappingTTL,
	}
	b.addSubscribeTypes(pr)
	return b
}

// addSubscribeTypes merges a block's subscribe_event_types. Only blocks that grant subscribe
// count: a block without it must not widen what another block's list allows.
func (b *builder) addSubscribeTypes(pr *PathRule) {
	if pr.Capabilities&CapSubscribe == 0 {
		return
	}
	if len(pr.SubscribeEventTypes) == 0 {
		b.subAll = true
		return
	}
	for _, t := range pr.SubscribeEventTypes {
		if !containsString(b.subTypes, t) {
			b.subTypes = append(b.subTypes, t)
		}
	}
}

func (b *builder) merge(pr *PathRule) {
	switch {
	case b.caps&CapDeny != 0:
		return // an explicit deny on a pattern cannot be widened
	case pr.Capabilities&CapDeny != 0:
		*b = builder{pattern: b.pattern, caps: CapDeny}
		return
	}
	b.caps |= pr.Capabilities
	// Vault prefers the shorter lifetime for both bounds.
	if pr.MaxWrappingTTL > 0 && (b.maxWrap == 0 || pr.MaxWrappingTTL < b.maxWrap) {
		b.maxWrap = pr.MaxWrappingTTL
	}
	if pr.MinWrappingTTL > 0 && (b.minWrap == 0 || pr.MinWrappingTTL < b.minWrap) {
		b.minWrap = pr.MinWrappingTTL
	}
	b.allowed = mergeParams(b.allowed, pr.AllowedParameters)
	b.denied = mergeParams(b.denied, pr.DeniedParameters)
	for _, name := range pr.RequiredParameters {
		if !containsString(b.required, name) {
			b.required = append(b.required, name)
		}
	}
	b.addSubscribeTypes(pr)
}

// mergeParams unions value lists per key. As in Vault, a policy without the
// attribute does not lift another policy's restrictions, and an empty list
// (any value) on either side wins over specific values.
func mergeParams(dst, src map[string][]any) map[string][]any {
	if len(src) == 0 {
		return dst
	}
	if dst == nil {
		return cloneParams(src)
	}
	for k, v := range src {
		prev, ok := dst[k]
		if len(v) == 0 || (ok && len(prev) == 0) {
			dst[k] = []any{}
			continue
		}
		dst[k] = append(append([]any(nil), v...), prev...)
	}
	return dst
}

func cloneParams(m map[string][]any) map[string][]any {
	if m == nil {
		return nil
	}
	out := make(map[string][]any, len(m))
	for k, v := range m {
		out[k] = append([]any{}, v...)
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (b *builder) compile() *rule {
	q := strconv.Quote(b.pattern)
	if b.subAll {
		b.subTypes = nil
	}
	r := &rule{
		pattern:     b.pattern,
		caps:        b.caps,
		allowed:     compileParams(b.allowed),
		denied:      compileParams(b.denied),
		required:    b.required,
		minWrap:     b.minWrap,
		maxWrap:     b.maxWrap,
		subTypes:    b.subTypes,
		grantReason: "granted by path " + q,
		denyReason:  "explicitly denied by path " + q,
		noCapReason: "path " + q + " does not grant this operation",
	}
	body := b.pattern
	if strings.HasSuffix(body, "*") {
		r.isPrefix = true
		body = body[:len(body)-1]
	}
	segs := strings.Split(body, "/")
	offset := 0
	r.firstWC = -1
	for _, s := range segs {
		if s == "+" {
			if r.firstWC < 0 {
				r.firstWC = offset
			}
			r.wildcards++
		}
		offset += len(s) + 1
	}
	switch {
	case r.wildcards > 0:
		r.segs = segs
		r.literal = body[:r.firstWC]
	case r.isPrefix:
		r.literal = body
		r.firstWC = len(body)
	}
	return r
}

// HasAccessUnder reports whether any rule grants a capability other than deny on some path
// under prefix (a mount path such as "secret/"). Vault's sys/internal/ui/mounts answers 403
// unless this holds, so the endpoint cannot be used to map mounts a token cannot touch.
func (a *ACL) HasAccessUnder(prefix string) bool {
	if a == nil {
		return false
	}
	if a.root {
		return true
	}
	grants := func(r *rule) bool { return r.caps&^CapDeny != 0 && r.caps&CapDeny == 0 }
	for p, r := range a.exact {
		if strings.HasPrefix(p, prefix) && grants(r) {
			return true
		}
	}
	for _, r := range a.wild {
		if !grants(r) {
			continue
		}
		// The rule can match under prefix if its literal start and the prefix agree as far as
		// the shorter of the two goes ("sec*" covers "secret/", "secret/data/*" is under it).
		n := min(len(r.literal), len(prefix))
		if r.literal[:n] == prefix[:n] {
			return true
		}
	}
	return false
}
