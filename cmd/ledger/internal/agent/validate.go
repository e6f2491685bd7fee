package agent

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	ctconfig "github.com/hashicorp/consul-template/config"
	cttemplate "github.com/hashicorp/consul-template/template"

	"github.com/ledger-secrets/ledger/cmd/ledger/internal/agent/config"
)

// ErrTemplate is wrapped by errors about a template itself.
var ErrTemplate = errors.New("template")

// consul-template parses a template only when it first executes it, by
// which time the agent has logged in and the failure is a retry loop. The
// agent parses every template at start instead, with consul-template's own
// functions (so only a real syntax error fails), and reports
// "file:line:col: message".
func validateTemplates(cfg *config.Config) error {
	base := ctconfig.DefaultConfig()
	base.Finalize()
	var errs []error
	check := func(source, contents, left, right, where string, baseLine int) {
		t, err := cttemplate.NewTemplate(&cttemplate.NewTemplateInput{
			Source: source, Contents: contents, LeftDelim: left, RightDelim: right, ReaderFunc: os.ReadFile,
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %s: %w", ErrTemplate, where, err))
			return
		}
		if _, err := t.Execute(&cttemplate.ExecuteInput{Brain: cttemplate.NewBrain(), Config: base}); err != nil && strings.HasPrefix(err.Error(), "parse: ") {
			errs = append(errs, parseError(err, source, contents, where, baseLine))
		}
	}
	for _, t := range cfg.Templates {
		l, r := delims(t.LeftDelim, t.RightDelim)
		check(t.Source, t.Contents, l, r, fmt.Sprintf("template at line %d", t.Line), t.Line)
	}
	for _, t := range cfg.EnvTemplates {
		l, r := delims(t.LeftDelim, t.RightDelim)
		check("", t.Contents, l, r, fmt.Sprintf("env_template %q at line %d", t.Name, t.Line), t.Line)
	}
	return errors.Join(errs...)
}

func delims(l, r string) (string, string) {
	if l == "" {
		l = "{{"
	}
	if r == "" {
		r = "}}"
	}
	return l, r
}

// text/template says "template: NAME:LINE: msg", sometimes with ":COL".
var tmplPos = regexp.MustCompile(`template: [^:]*:(\d+):(?:(\d+):)? ?(.*)$`)

func parseError(err error, source, contents, where string, baseLine int) error {
	m := tmplPos.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("%w: %s: %w", ErrTemplate, where, err)
	}
	line, _ := strconv.Atoi(m[1])
	col, msg := m[2], m[3]
	text := contents
	if source != "" {
		t, rerr := cttemplate.NewTemplate(&cttemplate.NewTemplateInput{Source: source, ReaderFunc: os.ReadFile})
		if rerr == nil {
			text = t.Contents()
		}
	}
	if col == "" {
		col = "1"
		if lines := strings.Split(text, "\n"); line >= 1 && line <= len(lines) {
			col = strconv.Itoa(guessColumn(lines[line-1], msg))
		}
	}
	if source != "" {
		return fmt.Errorf("%w: %s:%d:%s: %s", ErrTemplate, source, line, col, msg)
	}
	return fmt.Errorf("%w: %s, contents line %d:%s: %s", ErrTemplate, where, line, col, msg)
}

var quoted = regexp.MustCompile(`"([^"]+)"|<([^>]+)>`)

// guessColumn points at the token the message quotes, else the line's
// last action opening (where an unclosed action starts).
func guessColumn(line, msg string) int {
	for _, q := range quoted.FindAllStringSubmatch(msg, -1) {
		tok := q[1] + q[2]
		if i := strings.Index(line, tok); i >= 0 {
			return i + 1
		}
	}
	if i := strings.LastIndex(line, "{{"); i >= 0 {
		return i + 1
	}
	return 1
}
