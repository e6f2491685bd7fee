package database

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// Password rules, as Vault's default password policy: 20 characters of letters, digits and '-',
// with at least one lowercase, one uppercase, one digit and one '-'. A connection that names a
// password_policy gets its passwords from that policy instead (password_policy.go).
const (
	passwordLength  = 20
	passwordCharset = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
)

// NewPassword returns a password by the default rules, from crypto/rand.
func NewPassword() (string, error) {
	for {
		b, err := randomFrom(passwordCharset, passwordLength)
		if err != nil {
			return "", err
		}
		s := string(b)
		if strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz") && strings.ContainsAny(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(s, "0123456789") && strings.Contains(s, "-") {
			return s, nil
		}
	}
}

// randomFrom draws n characters uniformly from charset (len ≤ 256) by rejection sampling.
func randomFrom(charset string, n int) ([]byte, error) {
	limit := 256 - 256%len(charset)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return nil, fmt.Errorf("random: %w", err)
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, charset[int(c)%len(charset)])
			}
		}
	}
	return out, nil
}

const alphanumeric = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"

// usernameData is what a username_template sees, as in Vault.
type usernameData struct {
	DisplayName string
	RoleName    string
}

// templateFuncs are Vault's username template functions.
func templateFuncs(now time.Time) template.FuncMap {
	return template.FuncMap{
		"truncate": func(n int, s string) (string, error) {
			if n < 0 {
				return "", fmt.Errorf("truncate: negative length")
			}
			if len(s) > n {
				return s[:n], nil
			}
			return s, nil
		},
		"truncate_sha256": func(n int, s string) (string, error) {
			if n <= 8 {
				return "", fmt.Errorf("truncate_sha256: length must exceed 8")
			}
			if len(s) <= n {
				return s, nil
			}
			h := sha256.Sum256([]byte(s[n-8:]))
			return s[:n-8] + hex.EncodeToString(h[:])[:8], nil
		},
		"random": func(n int) (string, error) {
			if n < 1 || n > 256 {
				return "", fmt.Errorf("random: length must be 1 to 256")
			}
			b, err := randomFrom(alphanumeric, n)
			return string(b), err
		},
		"unix_time":        func() string { return strconv.FormatInt(now.Unix(), 10) },
		"unix_time_millis": func() string { return strconv.FormatInt(now.UnixMilli(), 10) },
		"timestamp":        func(layout string) string { return now.UTC().Format(layout) },
		"lowercase":        strings.ToLower,
		"uppercase":        strings.ToUpper,
		"replace":          func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
		"sha256": func(s string) string {
			h := sha256.Sum256([]byte(s))
			return hex.EncodeToString(h[:])
		},
		"base64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
		"uuid": func() (string, error) {
			var u [16]byte
			if _, err := rand.Read(u[:]); err != nil {
				return "", err
			}
			u[6] = u[6]&0x0f | 0x40
			u[8] = u[8]&0x3f | 0x80
			h := hex.EncodeToString(u[:])
			return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
		},
	}
}

// safeName keeps the characters a generated user name may carry from a display or role name;
// the rest become '_', so nothing a caller names can break out of a quoted identifier.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// GenerateUsername renders a username template (Vault's syntax and functions) for a caller's
// display name and a role, capped at maxLen bytes. A result that is empty or holds a quote, a
// backslash or a control character is refused: it would not survive the statements' quoting.
func GenerateUsername(tmpl, displayName, roleName string, now time.Time, maxLen int) (string, error) {
	t, err := template.New("username").Funcs(templateFuncs(now)).Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", engines.BadRequest("invalid username_template: %s", err)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, usernameData{DisplayName: safeName(displayName), RoleName: safeName(roleName)}); err != nil {
		return "", engines.BadRequest("username_template: %s", err)
	}
	name := strings.TrimSpace(buf.String())
	if maxLen > 0 && len(name) > maxLen {
		name = name[:maxLen]
	}
	if name == "" {
		return "", engines.BadRequest("username_template produced an empty username")
	}
	if strings.ContainsAny(name, "'\"`\\") || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", engines.BadRequest("username_template produced a username with a quote, backslash or control character")
	}
	return name, nil
}
