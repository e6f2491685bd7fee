package acl

import (
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// Format returns the canonical HCL form of a policy document, for
// `policy fmt`. The document must parse. HCL keeps its comments and line
// structure and only has indentation, spacing and "=" alignment normalised;
// JSON is rewritten as HCL from its parsed rules. A document Parse rejects
// yields Parse's *ParseError, which wraps ErrInvalidPolicy.
//
// The formatter works on hclsyntax tokens rather than using hclwrite because
// hclwrite pulls github.com/google/go-cmp into the build, which this module
// does not otherwise need.
func Format(text string) (string, error) {
	pol, err := Parse("", text)
	if err != nil {
		return "", err
	}
	src := []byte(text)
	if strings.TrimLeft(text, " \t\r\n")[0] == '{' {
		src = render(pol)
	}
	tokens, diags := hclsyntax.LexConfig(src, "", hcl.InitialPos)
	if diags.HasErrors() {
		// Unreachable for a document Parse accepted, but never emit garbage.
		return "", parser{}.diagError(diags)
	}
	return formatTokens(src, tokens), nil
}

// atom is a run of tokens printed as one unit: a whole quoted string or
// heredoc (copied verbatim, since their bytes are the value), a comment, or
// a single token.
type atom struct {
	typ  hclsyntax.TokenType
	text string
}

type line struct {
	atoms  []atom
	indent int
}

func formatTokens(src []byte, tokens hclsyntax.Tokens) string {
	lines := splitLines(src, tokens)
	indentLines(lines)
	alignEquals(lines)

	var b strings.Builder
	blank := true // suppress blank lines at the top of the document
	for _, l := range lines {
		if len(l.atoms) == 0 {
			if !blank {
				b.WriteByte('\n')
			}
			blank = true
			continue
		}
		blank = false
		b.WriteString(strings.Repeat("  ", l.indent))
		b.WriteString(renderLine(l.atoms))
		b.WriteByte('\n')
	}
	out := strings.TrimRight(b.String(), "\n")
	if out == "" {
		return ""
	}
	return out + "\n"
}

func splitLines(src []byte, tokens hclsyntax.Tokens) []line {
	var (
		lines []line
		cur   []atom
	)
	for i := 0; i < len(tokens); i++ {
		tok := tokens[i]
		switch tok.Type {
		case hclsyntax.TokenEOF:
			i = len(tokens)
		case hclsyntax.TokenNewline:
			lines = append(lines, line{atoms: cur})
			cur = nil
		case hclsyntax.TokenComment:
			text := string(tok.Bytes)
			if !strings.HasPrefix(text, "#") && !strings.HasPrefix(text, "//") {
				cur = append(cur, atom{typ: tok.Type, text: text}) // block comment, verbatim
				continue
			}
			// Line comments carry their newline (unless at EOF).
			cur = append(cur, atom{typ: tok.Type, text: strings.TrimRight(text, " \t\r\n")})
			if strings.HasSuffix(text, "\n") {
				lines = append(lines, line{atoms: cur})
				cur = nil
			}
		case hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			end := closingToken(tokens, i)
			start, stop := tok.Range.Start.Byte, tokens[end].Range.End.Byte
			// A heredoc's body lines live inside this atom, so they are
			// never re-indented; its closing marker is followed by a newline
			// token, which ends the line as usual.
			cur = append(cur, atom{typ: tok.Type, text: string(src[start:stop])})
			i = end
		default:
			cur = append(cur, atom{typ: tok.Type, text: string(tok.Bytes)})
		}
	}
	if len(cur) > 0 {
		lines = append(lines, line{atoms: cur})
	}
	return lines
}

// closingToken returns the index of the token closing the string or heredoc
// opened at tokens[open], accounting for strings nested in interpolations.
func closingToken(tokens hclsyntax.Tokens, open int) int {
	depth := 0
	for j := open; j < len(tokens); j++ {
		switch tokens[j].Type {
		case hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc:
			depth++
		case hclsyntax.TokenCQuote, hclsyntax.TokenCHeredoc:
			depth--
			if depth == 0 {
				return j
			}
		case hclsyntax.TokenEOF:
			return j - 1
		}
	}
	return len(tokens) - 1
}

func opens(t hclsyntax.TokenType) bool {
	switch t {
	case hclsyntax.TokenOBrace, hclsyntax.TokenOBrack, hclsyntax.TokenOParen,
		hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
		return true
	}
	return false
}

func closes(t hclsyntax.TokenType) bool {
	switch t {
	case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenTemplateSeqEnd:
		return true
	}
	return false
}

// indentLines indents one level per line that leaves brackets open, however
// many it opens, so `path "x" { capabilities = [` indents its body once.
// stack holds, per indenting line, how many of its brackets are still open.
func indentLines(lines []line) {
	var stack []int
	pop := func() {
		if n := len(stack); n > 0 {
			stack[n-1]--
			if stack[n-1] <= 0 {
				stack = stack[:n-1]
			}
		}
	}
	for i := range lines {
		atoms := lines[i].atoms
		k := 0
		for k < len(atoms) && closes(atoms[k].typ) {
			pop()
			k++
		}
		lines[i].indent = len(stack)
		balance := 0
		for _, a := range atoms[k:] {
			switch {
			case opens(a.typ):
				balance++
			case closes(a.typ):
				balance--
			}
		}
		for ; balance < 0; balance++ {
			pop()
		}
		if balance > 0 {
			stack = append(stack, balance)
		}
	}
}

// alignEquals lines up the "=" of consecutive `key = value` lines at the
// same indentation, as hclwrite and `terraform fmt` do.
func alignEquals(lines []line) {
	isAssign := func(l line) bool {
		return len(l.atoms) >= 2 && l.atoms[1].typ == hclsyntax.TokenEqual &&
			(l.atoms[0].typ == hclsyntax.TokenIdent || l.atoms[0].typ == hclsyntax.TokenOQuote)
	}
	for i := 0; i < len(lines); {
		if !isAssign(lines[i]) {
			i++
			continue
		}
		j, width := i, 0
		for j < len(lines) && isAssign(lines[j]) && lines[j].indent == lines[i].indent {
			width = max(width, len(lines[j].atoms[0].text))
			j++
		}
		for k := i; k < j; k++ {
			key := &lines[k].atoms[0]
			key.text += strings.Repeat(" ", width-len(key.text))
		}
		i = j
	}
}

func renderLine(atoms []atom) string {
	var b strings.Builder
	for i, a := range atoms {
		if i > 0 && spaceBetween(atoms[i-1], a) && !unaryMinus(atoms, i-1) {
			b.WriteByte(' ')
		}
		b.WriteString(a.text)
	}
	return strings.TrimRight(b.String(), " \t")
}

// unaryMinus reports whether atoms[i] is a minus sign negating what follows
// rather than subtracting, so "-1" is not printed as "- 1".
func unaryMinus(atoms []atom, i int) bool {
	if atoms[i].typ != hclsyntax.TokenMinus {
		return false
	}
	if i == 0 {
		return true
	}
	switch atoms[i-1].typ {
	case hclsyntax.TokenIdent, hclsyntax.TokenNumberLit, hclsyntax.TokenOQuote, hclsyntax.TokenOHeredoc,
		hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenCBrace:
		return false // an operand precedes it: binary
	}
	return true
}

func spaceBetween(prev, next atom) bool {
	p, n := prev.typ, next.typ
	switch {
	case n == hclsyntax.TokenComment || p == hclsyntax.TokenComment:
		return true
	case n == hclsyntax.TokenComma, n == hclsyntax.TokenDot, p == hclsyntax.TokenDot,
		n == hclsyntax.TokenEllipsis, n == hclsyntax.TokenCBrack, n == hclsyntax.TokenCParen,
		p == hclsyntax.TokenOBrack, p == hclsyntax.TokenOParen, p == hclsyntax.TokenBang,
		p == hclsyntax.TokenTemplateInterp, p == hclsyntax.TokenTemplateControl,
		n == hclsyntax.TokenTemplateSeqEnd:
		return false
	case p == hclsyntax.TokenOBrace && n == hclsyntax.TokenCBrace:
		return false
	case n == hclsyntax.TokenOParen, n == hclsyntax.TokenOBrack:
		// Calls and index steps hug their operand; a list after "=" does not.
		return p != hclsyntax.TokenIdent && p != hclsyntax.TokenCBrack && p != hclsyntax.TokenCParen
	}
	return true
}

// render writes a parsed policy as HCL; Format then normalises the layout.
func render(pol *Policy) []byte {
	var b bytes.Buffer
	for i, pr := range pol.Paths {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("path " + hclQuote(pr.Pattern) + " {\n")
		b.WriteString("capabilities = " + renderStrings(pr.Capabilities.Names()) + "\n")
		if pr.AllowedParameters != nil {
			b.WriteString("allowed_parameters = " + renderParams(pr.AllowedParameters) + "\n")
		}
		if pr.DeniedParameters != nil {
			b.WriteString("denied_parameters = " + renderParams(pr.DeniedParameters) + "\n")
		}
		if len(pr.RequiredParameters) > 0 {
			b.WriteString("required_parameters = " + renderStrings(pr.RequiredParameters) + "\n")
		}
		if len(pr.SubscribeEventTypes) > 0 {
			b.WriteString("subscribe_event_types = " + renderStrings(pr.SubscribeEventTypes) + "\n")
		}
		if pr.MinWrappingTTL > 0 {
			b.WriteString("min_wrapping_ttl = " + hclQuote(pr.MinWrappingTTL.String()) + "\n")
		}
		if pr.MaxWrappingTTL > 0 {
			b.WriteString("max_wrapping_ttl = " + hclQuote(pr.MaxWrappingTTL.String()) + "\n")
		}
		b.WriteString("}\n")
	}
	return b.Bytes()
}

func renderStrings(ss []string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = hclQuote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

func renderParams(m map[string][]any) string {
	if len(m) == 0 {
		return "{}"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{\n")
	for _, k := range keys {
		b.WriteString(hclQuote(k) + " = " + renderValue(m[k]) + "\n")
	}
	b.WriteString("}")
	return b.String()
}

func renderValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return hclQuote(x)
	case bool:
		return strconv.FormatBool(x)
	case float64:
		if math.IsInf(x, 0) {
			// Only reachable from an out-of-range JSON literal; an
			// out-of-range HCL literal keeps the same meaning.
			if x > 0 {
				return "1e9999"
			}
			return "-1e9999"
		}
		return strconv.FormatFloat(x, 'g', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = renderValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = hclQuote(k) + " = " + renderValue(x[k])
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	return "null"
}

// hclQuote writes s as an HCL quoted string; unlike strconv.Quote it must
// also escape the template introducers "${" and "%{".
func hclQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case (r == '$' || r == '%') && i+1 < len(s) && s[i+1] == '{':
			b.WriteRune(r)
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u` + strconv.FormatInt(int64(r)+0x10000, 16)[1:])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
