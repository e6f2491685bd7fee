package dbplugin

import "strings"

// Dialect is how a database quotes, which decides where a ';' ends a statement.
type Dialect int

// Dialects.
const (
	// PostgreSQL: '…' strings ('' escapes a quote), "…" identifiers, $tag$…$tag$ bodies, -- and
	// /* */ comments (nested).
	PostgreSQL Dialect = iota
	// MySQL: '…' and "…" strings with backslash escapes, `…` identifiers, #, -- and /* */
	// comments.
	MySQL
)

// Split turns statement entries into single statements. Vault takes each entry of a statement
// list as one or more statements separated by ';'; Split does the same but does not split
// inside quotes, identifiers, dollar-quoted bodies or comments, so a DO block or a ';' in a
// string survives. Empty statements are dropped; the trailing ';' is not kept.
func Split(entries []string, d Dialect) []string {
	var out []string
	for _, e := range entries {
		for _, s := range splitOne(e, d) {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

func splitOne(s string, d Dialect) []string {
	var out []string
	start := 0
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ';':
			out = append(out, s[start:i])
			i++
			start = i
		case c == '\'' || c == '"' || (c == '`' && d == MySQL):
			i = skipQuoted(s, i, c, d == MySQL)
		case c == '-' && i+1 < len(s) && s[i+1] == '-', c == '#' && d == MySQL:
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(s)
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			i = skipBlockComment(s, i, d == PostgreSQL)
		case c == '$' && d == PostgreSQL:
			i = skipDollar(s, i)
		default:
			i++
		}
	}
	return append(out, s[start:])
}

// skipQuoted returns the index after the quoted run opened at s[i]. A doubled quote is an
// escaped quote; with backslashes, a backslash escapes the next byte. Unterminated runs end the
// input (the database will report the error).
func skipQuoted(s string, i int, q byte, backslash bool) int {
	i++
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case s[i] == q:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

func skipBlockComment(s string, i int, nested bool) int {
	depth := 0
	for i < len(s) {
		switch {
		case i+1 < len(s) && s[i] == '/' && s[i+1] == '*':
			if nested || depth == 0 {
				depth++
			}
			i += 2
		case i+1 < len(s) && s[i] == '*' && s[i+1] == '/':
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return len(s)
}

// skipDollar skips a $tag$…$tag$ body opened at s[i]; a '$' that opens no tag ($1) is one byte.
func skipDollar(s string, i int) int {
	j := i + 1
	for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || (j > i+1 && s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	if j >= len(s) || s[j] != '$' {
		return i + 1
	}
	tag := s[i : j+1]
	if end := strings.Index(s[j+1:], tag); end >= 0 {
		return j + 1 + end + len(tag)
	}
	return len(s)
}
