// Package passwordpolicy parses Vault's password policies and generates passwords from them.
//
// A policy is HCL (or the same structure in JSON):
//
//	length = 20
//	rule "charset" {
//	  charset   = "abcdefghijklmnopqrstuvwxyz"
//	  min-chars = 1
//	}
//
// A password is drawn uniformly from the union of the rules' charsets and kept only if every
// rule holds (at least min-chars characters from its charset). Parse refuses a policy that
// cannot be satisfied on its face; Check also tries generating, so a policy that is possible in
// principle but practically never satisfied is refused when it is written, not when it is used.
package passwordpolicy

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// Limits, as Vault's: passwords of 4 to 100 characters, charsets of at most 256 characters.
const (
	MinLength     = 4
	MaxLength     = 100
	MaxCharset    = 256
	maxPolicySize = 64 << 10
)

// ErrInvalid: the policy text does not describe a usable policy. Its message says why.
var ErrInvalid = errors.New("invalid password policy")

// ErrCannotGenerate: generation did not find a password satisfying the rules in time.
var ErrCannotGenerate = errors.New("unable to generate a password from the policy")

// Rule requires MinChars characters from Charset.
type Rule struct {
	Charset  []rune
	MinChars int
}

// Policy is a parsed password policy.
type Policy struct {
	Length  int
	Rules   []Rule
	charset []rune // union of the rules' charsets, sorted, without duplicates
}

// The grammar, as read-only schemas (decoded by hand: gohcl would pull hclwrite and go-cmp
// into the build, which the module otherwise avoids).
var (
	policySchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "length", Required: true}},
		Blocks:     []hcl.BlockHeaderSchema{{Type: "rule", LabelNames: []string{"type"}}},
	}
	charsetSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{{Name: "charset", Required: true}, {Name: "min-chars"}},
	}
)

// Parse reads a policy in HCL or JSON, also when base64-encoded as Vault accepts it.
func Parse(text string) (*Policy, error) {
	if len(text) > maxPolicySize {
		return nil, fmt.Errorf("%w: the policy is longer than %d bytes", ErrInvalid, maxPolicySize)
	}
	if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text)); err == nil && utf8.Valid(dec) {
		text = string(dec)
	}
	if strings.TrimSpace(text) == "" {
		return nil, fmt.Errorf("%w: the policy is empty", ErrInvalid)
	}
	var (
		f     *hcl.File
		diags hcl.Diagnostics
		err   error
	)
	if strings.HasPrefix(strings.TrimSpace(text), "{") {
		f, diags = json.Parse([]byte(text), "policy.json")
	} else {
		f, diags = hclsyntax.ParseConfig([]byte(text), "policy.hcl", hcl.InitialPos)
	}
	if diags.HasErrors() {
		return nil, fmt.Errorf("%w: unable to decode: %s", ErrInvalid, diagText(diags))
	}
	content, diags := f.Body.Content(policySchema)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, diagText(diags))
	}
	p := &Policy{}
	if p.Length, err = intAttr(content.Attributes["length"]); err != nil {
		return nil, fmt.Errorf("%w: length: %s", ErrInvalid, err)
	}
	for _, rb := range content.Blocks {
		if rb.Labels[0] != "charset" {
			return nil, fmt.Errorf("%w: unrecognized rule type %q: the only rule is \"charset\"", ErrInvalid, rb.Labels[0])
		}
		rc, diags := rb.Body.Content(charsetSchema)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%w: rule \"charset\": %s", ErrInvalid, diagText(diags))
		}
		var r Rule
		cs, err := stringAttr(rc.Attributes["charset"])
		if err != nil {
			return nil, fmt.Errorf("%w: rule \"charset\": charset: %s", ErrInvalid, err)
		}
		if !utf8.ValidString(cs) {
			return nil, fmt.Errorf("%w: rule \"charset\": the charset is not valid UTF-8", ErrInvalid)
		}
		r.Charset = []rune(cs)
		if a, ok := rc.Attributes["min-chars"]; ok {
			if r.MinChars, err = intAttr(a); err != nil {
				return nil, fmt.Errorf("%w: rule \"charset\": min-chars: %s", ErrInvalid, err)
			}
			if r.MinChars < 0 {
				return nil, fmt.Errorf("%w: rule \"charset\": min-chars cannot be negative", ErrInvalid)
			}
		}
		p.Rules = append(p.Rules, r)
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// intAttr reads a whole number (HCL1 policies also write it as a string).
func intAttr(a *hcl.Attribute) (int, error) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return 0, errors.New(diagText(diags))
	}
	if v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
		n, err := strconv.Atoi(strings.TrimSpace(v.AsString()))
		if err != nil {
			return 0, errors.New("expected a whole number")
		}
		return n, nil
	}
	if v.Type() != cty.Number || v.IsNull() || !v.IsKnown() {
		return 0, errors.New("expected a whole number")
	}
	bf := v.AsBigFloat()
	if !bf.IsInt() {
		return 0, errors.New("expected a whole number")
	}
	n, acc := bf.Int64()
	if acc != big.Exact || n > 1<<20 || n < -(1<<20) {
		return 0, errors.New("number out of range")
	}
	return int(n), nil
}

func stringAttr(a *hcl.Attribute) (string, error) {
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		return "", errors.New(diagText(diags))
	}
	if v.Type() != cty.String || v.IsNull() || !v.IsKnown() {
		return "", errors.New("expected a string")
	}
	return v.AsString(), nil
}

func diagText(diags hcl.Diagnostics) string {
	var msgs []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			msgs = append(msgs, strings.TrimSuffix(d.Summary+": "+d.Detail, ": "))
		}
	}
	return strings.Join(msgs, "; ")
}

// validate checks what can be checked without generating: lengths, charsets, the rules' sum.
func (p *Policy) validate() error {
	var errs []string
	need := 0
	var all []rune
	for _, r := range p.Rules {
		need += r.MinChars
		all = append(all, r.Charset...)
	}
	slices.Sort(all)
	p.charset = slices.Compact(all)
	switch {
	case p.Length <= 0:
		errs = append(errs, "length must be > 0")
	case p.Length < MinLength || p.Length > MaxLength:
		errs = append(errs, fmt.Sprintf("passwords must be between %d and %d characters", MinLength, MaxLength))
	case p.Length < need:
		errs = append(errs, fmt.Sprintf("specified rules require at least %d characters but %d is specified", need, p.Length))
	}
	switch {
	case len(p.charset) == 0:
		errs = append(errs, "no charset specified")
	case len(p.charset) > MaxCharset:
		errs = append(errs, fmt.Sprintf("charset is too long: limited to %d characters", MaxCharset))
	case slices.ContainsFunc(p.charset, func(r rune) bool { return !unicode.IsPrint(r) }):
		errs = append(errs, "non-printable character in charset")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}

// Generate returns a password satisfying the policy, trying until ctx ends (or one second, if
// ctx has no deadline).
func (p *Policy) Generate(ctx context.Context) (string, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	// Rejection sampling over bytes keeps every character equally likely: bytes at or above
	// the largest multiple of the charset's size are drawn again.
	n := len(p.charset)
	limit := 256 - 256%n
	buf := make([]byte, 2*p.Length)
	candidate := make([]rune, 0, p.Length)
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("%w: no password satisfied the rules before the deadline; are the rules too restrictive?", ErrCannotGenerate)
		}
		candidate = candidate[:0]
		for len(candidate) < p.Length {
			rand.Read(buf) // never fails: crypto/rand panics rather than return short
			for _, b := range buf {
				if int(b) < limit && len(candidate) < p.Length {
					candidate = append(candidate, p.charset[int(b)%n])
				}
			}
		}
		if p.satisfied(candidate) {
			return string(candidate), nil
		}
	}
}

func (p *Policy) satisfied(pw []rune) bool {
	for _, r := range p.Rules {
		if r.MinChars == 0 {
			continue
		}
		count := 0
		for _, c := range pw {
			if slices.Contains(r.Charset, c) {
				count++
			}
		}
		if count < r.MinChars {
			return false
		}
	}
	return true
}

// Check parses text and proves the policy generates: ten passwords within one second, as Vault
// checks a policy before storing it.
func Check(ctx context.Context, text string) (*Policy, error) {
	p, err := Parse(text)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	for range 10 {
		if _, err := p.Generate(ctx); err != nil {
			return nil, fmt.Errorf("%w: unable to generate 10 passwords from the policy within 1s: are the rules impossible or too restrictive?", ErrInvalid)
		}
	}
	return p, nil
}
