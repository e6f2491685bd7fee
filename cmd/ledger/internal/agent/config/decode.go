package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
	"github.com/hashicorp/hcl/hcl/token"
	jsonparser "github.com/hashicorp/hcl/json/parser"
)

// problem is one error or warning in a config file; errors wrap ErrInvalid.
type problem struct {
	file string
	line int // 0 when the problem is the absence of something
	col  int
	msg  string
}

func (p *problem) Error() string {
	switch {
	case p.line == 0:
		return fmt.Sprintf("%s: %s", p.file, p.msg)
	case p.col > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.file, p.line, p.col, p.msg)
	}
	return fmt.Sprintf("%s:%d: %s", p.file, p.line, p.msg)
}

func (p *problem) Unwrap() error { return ErrInvalid }

// decoder collects every problem of one Parse call, so a file with several
// mistakes is reported in one go (the server config's approach).
type decoder struct {
	file     string
	problems []*problem
	warnings []*problem
}

func (d *decoder) errorf(pos token.Pos, format string, args ...any) {
	d.problems = append(d.problems, &problem{file: d.file, line: pos.Line, msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) warnf(pos token.Pos, format string, args ...any) {
	d.warnings = append(d.warnings, &problem{file: d.file, line: pos.Line, msg: fmt.Sprintf(format, args...)})
}

func byPosition(a, b *problem) int {
	if (a.line == 0) != (b.line == 0) {
		return cmp.Compare(b.line, a.line)
	}
	return cmp.Compare(a.line, b.line)
}

func (d *decoder) err() error {
	if len(d.problems) == 0 {
		return nil
	}
	slices.SortStableFunc(d.problems, byPosition)
	errs := make([]error, len(d.problems))
	for i, p := range d.problems {
		errs[i] = p
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

func (d *decoder) warningStrings() []string {
	slices.SortStableFunc(d.warnings, byPosition)
	out := make([]string, len(d.warnings))
	for i, w := range d.warnings {
		out[i] = w.Error()
	}
	return out
}

// item is one key of a block with its value; labels are the block's labels
// (`method "approle" {}` has key "method" and label "approle").
type item struct {
	key    string
	labels []string
	pos    token.Pos
	val    ast.Node
}

// fields splits a body into its items by key and reports every key not in
// allowed as an error.
func (d *decoder) fields(list *ast.ObjectList, where string, allowed ...string) map[string][]item {
	out := map[string][]item{}
	for _, oi := range list.Items {
		if len(oi.Keys) == 0 {
			continue
		}
		it := item{key: keyText(oi.Keys[0]), pos: oi.Keys[0].Pos(), val: oi.Val}
		for _, k := range oi.Keys[1:] {
			it.labels = append(it.labels, keyText(k))
		}
		if !slices.Contains(allowed, it.key) {
			in := ""
			if where != "" {
				in = " in " + where
			}
			d.errorf(it.pos, "unknown key %q%s; expected one of: %s", it.key, in, strings.Join(allowed, ", "))
			continue
		}
		out[it.key] = append(out[it.key], it)
	}
	return out
}

func keyText(k *ast.ObjectKey) string {
	if k.Token.Type == token.STRING {
		if s, ok := k.Token.Value().(string); ok {
			return s
		}
	}
	return k.Token.Text
}

// one returns the single item for key, reporting repeats.
func (d *decoder) one(f map[string][]item, key string) (item, bool) {
	items := f[key]
	if len(items) == 0 {
		return item{}, false
	}
	for _, it := range items[1:] {
		d.errorf(it.pos, "%s is set more than once; the first is at line %d", key, items[0].pos.Line)
	}
	return items[0], true
}

// body returns an item's value as a block body. HCL 1 reads `x = {…}` and
// `x {…}` alike, and a JSON array of objects as repeated blocks.
func (d *decoder) body(it item) (*ast.ObjectList, bool) {
	switch v := it.val.(type) {
	case *ast.ObjectType:
		return v.List, true
	case *ast.ListType:
		// JSON's `"template": [{…}]` for a single block.
		if len(v.List) == 1 {
			if o, ok := v.List[0].(*ast.ObjectType); ok {
				return o.List, true
			}
		}
	}
	d.errorf(it.pos, "%s must be a block", it.key)
	return nil, false
}

// blocks returns the bodies of every item for key (a JSON list of objects
// counts as several blocks).
func (d *decoder) blocks(f map[string][]item) func(key string) []item {
	return func(key string) []item {
		var out []item
		for _, it := range f[key] {
			if l, ok := it.val.(*ast.ListType); ok {
				for _, n := range l.List {
					out = append(out, item{key: it.key, labels: it.labels, pos: n.Pos(), val: n})
				}
				continue
			}
			out = append(out, it)
		}
		return out
	}
}

func (d *decoder) literal(it item) (*ast.LiteralType, bool) {
	lit, ok := it.val.(*ast.LiteralType)
	if !ok {
		return nil, false
	}
	return lit, true
}

func (d *decoder) str(it item) (string, bool) {
	lit, ok := d.literal(it)
	if !ok || (lit.Token.Type != token.STRING && lit.Token.Type != token.HEREDOC) {
		d.errorf(it.pos, "%s must be a string", it.key)
		return "", false
	}
	return lit.Token.Value().(string), true
}

func (d *decoder) nonEmpty(it item) (string, bool) {
	s, ok := d.str(it)
	if ok && strings.TrimSpace(s) == "" {
		d.errorf(it.pos, "%s must not be empty", it.key)
		return "", false
	}
	return s, ok
}

// boolean accepts what Vault accepts: true/false or a string holding one.
func (d *decoder) boolean(it item) (bool, bool) {
	if lit, ok := d.literal(it); ok {
		switch lit.Token.Type {
		case token.BOOL:
			return lit.Token.Value().(bool), true
		case token.STRING:
			if b, err := strconv.ParseBool(strings.TrimSpace(lit.Token.Value().(string))); err == nil {
				return b, true
			}
		}
	}
	d.errorf(it.pos, "%s must be true or false", it.key)
	return false, false
}

func (d *decoder) integer(it item) (int64, bool) {
	if lit, ok := d.literal(it); ok {
		switch lit.Token.Type {
		case token.NUMBER:
			return lit.Token.Value().(int64), true
		case token.STRING:
			if n, err := strconv.ParseInt(strings.TrimSpace(lit.Token.Value().(string)), 10, 64); err == nil {
				return n, true
			}
		}
	}
	d.errorf(it.pos, "%s must be a whole number", it.key)
	return 0, false
}

func (d *decoder) float(it item) (float64, bool) {
	if lit, ok := d.literal(it); ok {
		switch lit.Token.Type {
		case token.NUMBER:
			return float64(lit.Token.Value().(int64)), true
		case token.FLOAT:
			return lit.Token.Value().(float64), true
		case token.STRING:
			if f, err := strconv.ParseFloat(strings.TrimSpace(lit.Token.Value().(string)), 64); err == nil {
				return f, true
			}
		}
	}
	d.errorf(it.pos, "%s must be a number", it.key)
	return 0, false
}

// duration accepts a number of seconds or a duration string ("5m"), as Vault does.
func (d *decoder) duration(it item) (time.Duration, bool) {
	if lit, ok := d.literal(it); ok {
		switch lit.Token.Type {
		case token.NUMBER:
			if n := lit.Token.Value().(int64); n >= 0 {
				return time.Duration(n) * time.Second, true
			}
		case token.STRING:
			s := strings.TrimSpace(lit.Token.Value().(string))
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
				return time.Duration(n) * time.Second, true
			}
			if dur, err := time.ParseDuration(s); err == nil && dur >= 0 {
				return dur, true
			}
		}
	}
	d.errorf(it.pos, "%s must be a duration such as \"30s\" or \"5m\", or a number of seconds", it.key)
	return 0, false
}

// fileMode reads perms/mode: HCL 1 reads 0600 as octal, and Vault also
// accepts the string "0600".
func (d *decoder) fileMode(it item) (os.FileMode, bool) {
	if lit, ok := d.literal(it); ok {
		var n int64 = -1
		switch lit.Token.Type {
		case token.NUMBER:
			n = lit.Token.Value().(int64)
		case token.STRING:
			if v, err := strconv.ParseInt(strings.TrimSpace(lit.Token.Value().(string)), 8, 64); err == nil {
				n = v
			}
		}
		if n >= 0 && n <= 0o7777 {
			return os.FileMode(n), true
		}
	}
	d.errorf(it.pos, "%s must be a file mode such as 0600", it.key)
	return 0, false
}

// command reads a string (run under a shell, as consul-template does) or a
// list of strings (run directly).
func (d *decoder) command(it item) ([]string, bool) {
	switch v := it.val.(type) {
	case *ast.LiteralType:
		if s, ok := d.nonEmpty(it); ok {
			return []string{s}, true
		}
		return nil, false
	case *ast.ListType:
		var out []string
		for _, n := range v.List {
			lit, ok := n.(*ast.LiteralType)
			if !ok || lit.Token.Type != token.STRING {
				d.errorf(n.Pos(), "%s must be a list of strings", it.key)
				return nil, false
			}
			out = append(out, lit.Token.Value().(string))
		}
		if len(out) == 0 || strings.TrimSpace(out[0]) == "" {
			d.errorf(it.pos, "%s must not be empty", it.key)
			return nil, false
		}
		return out, true
	}
	d.errorf(it.pos, "%s must be a string or a list of strings", it.key)
	return nil, false
}

func (d *decoder) decodeFile(src []byte) *Config {
	cfg := &Config{TemplateConfig: TemplateConfig{
		StaticSecretRenderInt: DefaultStaticInterval,
		LeaseRenewalThreshold: DefaultRenewalThreshold,
	}, Vault: Vault{NumRetries: DefaultNumRetries}}

	file, err := parse(src)
	if err != nil {
		d.syntax(err)
		return cfg
	}
	root, ok := file.Node.(*ast.ObjectList)
	if !ok {
		d.errorf(token.Pos{}, "the file must hold HCL blocks and settings")
		return cfg
	}
	f := d.fields(root, "",
		"vault", "auto_auth", "template", "template_config", "env_template", "exec",
		"api_proxy", "listener", "cache", "pid_file", "exit_after_auth", "log_level", "log_file")
	all := d.blocks(f)

	if it, ok := d.one(f, "vault"); ok {
		if b, ok := d.body(it); ok {
			cfg.Vault = d.decodeVault(b)
		}
	}
	if it, ok := d.one(f, "auto_auth"); ok {
		if b, ok := d.body(it); ok {
			cfg.AutoAuth = d.decodeAutoAuth(it, b)
		}
	}
	if it, ok := d.one(f, "template_config"); ok {
		if b, ok := d.body(it); ok {
			d.decodeTemplateConfig(b, &cfg.TemplateConfig)
		}
	}
	for _, it := range all("template") {
		if b, ok := d.body(it); ok {
			if t := d.decodeTemplate(it, b); t != nil {
				cfg.Templates = append(cfg.Templates, t)
			}
		}
	}
	names := map[string]int{}
	for _, it := range all("env_template") {
		if len(it.labels) != 1 {
			d.errorf(it.pos, `env_template needs the variable's name: env_template "DB_USER" { contents = "…" }`)
			continue
		}
		if line, dup := names[it.labels[0]]; dup {
			d.errorf(it.pos, "env_template %q is already defined at line %d", it.labels[0], line)
			continue
		}
		names[it.labels[0]] = it.pos.Line
		if b, ok := d.body(it); ok {
			cfg.EnvTemplates = append(cfg.EnvTemplates, d.decodeEnvTemplate(it, b))
		}
	}
	if it, ok := d.one(f, "exec"); ok {
		if b, ok := d.body(it); ok {
			cfg.Exec = d.decodeExec(it, b)
		}
	}
	if len(cfg.EnvTemplates) > 0 && cfg.Exec == nil {
		d.errorf(token.Pos{Line: cfg.EnvTemplatesLine()}, "env_template needs an exec block: the variables go to the process exec starts")
	}
	if it, ok := d.one(f, "api_proxy"); ok {
		if b, ok := d.body(it); ok {
			cfg.APIProxy = d.decodeAPIProxy(b)
		}
	}
	if it, ok := d.one(f, "cache"); ok {
		if b, ok := d.body(it); ok {
			d.fields(b, "cache")
			cfg.Cache = &Cache{}
		}
	}
	addrs := map[string]int{}
	for _, it := range all("listener") {
		if b, ok := d.body(it); ok {
			l, ok := d.decodeListener(it, b)
			if !ok {
				continue
			}
			if line, dup := addrs[l.Address]; dup {
				d.errorf(it.pos, "listener address %s is already used by the listener at line %d", l.Address, line)
				continue
			}
			addrs[l.Address] = l.Line
			cfg.Listeners = append(cfg.Listeners, l)
		}
	}
	if it, ok := d.one(f, "pid_file"); ok {
		cfg.PidFile, _ = d.nonEmpty(it)
	}
	if it, ok := d.one(f, "exit_after_auth"); ok {
		cfg.ExitAfterAuth, _ = d.boolean(it)
	}
	if it, ok := d.one(f, "log_level"); ok {
		if s, ok := d.str(it); ok {
			switch strings.ToLower(strings.TrimSpace(s)) {
			case "trace", "debug", "info", "warn", "warning", "error", "err", "":
				cfg.LogLevel = strings.ToLower(strings.TrimSpace(s))
			default:
				d.errorf(it.pos, "log_level %q is not one of trace, debug, info, warn, error", s)
			}
		}
	}
	if it, ok := d.one(f, "log_file"); ok {
		cfg.LogFile, _ = d.nonEmpty(it)
	}

	d.crossCheck(cfg, f)
	return cfg
}

// EnvTemplatesLine is the line of the first env_template block (0 if none).
func (c *Config) EnvTemplatesLine() int {
	if len(c.EnvTemplates) == 0 {
		return 0
	}
	return c.EnvTemplates[0].Line
}

// syntax turns HCL's "At 3:5: msg" into our file:line:col form.
func (d *decoder) syntax(err error) {
	var pe *hclparser.PosError
	if errors.As(err, &pe) {
		d.problems = append(d.problems, &problem{file: d.file, line: pe.Pos.Line, col: pe.Pos.Column, msg: pe.Err.Error()})
		return
	}
	d.errorf(token.Pos{}, "%v", err)
}

// parse reads HCL or JSON as HCL 1 does, keeping positions.
func parse(src []byte) (*ast.File, error) {
	trimmed := strings.TrimSpace(string(src))
	if strings.HasPrefix(trimmed, "{") {
		return jsonparser.Parse(src)
	}
	return hcl.ParseBytes(src)
}

func (d *decoder) crossCheck(cfg *Config, f map[string][]item) {
	needsAuth := func(what string, line int) {
		if cfg.AutoAuth == nil {
			d.errorf(token.Pos{Line: line}, "%s needs an auto_auth block to get a token", what)
		}
	}
	if len(cfg.Templates) > 0 {
		needsAuth("template", cfg.Templates[0].Line)
	}
	if cfg.Exec != nil {
		needsAuth("exec", f["exec"][0].pos.Line)
	}
	if cfg.APIProxy != nil && cfg.APIProxy.UseAutoAuthToken {
		needsAuth("api_proxy use_auto_auth_token", f["api_proxy"][0].pos.Line)
	}
	if (cfg.APIProxy != nil || cfg.Cache != nil) && len(cfg.Listeners) == 0 {
		line := 0
		if its := f["api_proxy"]; len(its) > 0 {
			line = its[0].pos.Line
		} else if its := f["cache"]; len(its) > 0 {
			line = its[0].pos.Line
		}
		d.errorf(token.Pos{Line: line}, `api_proxy and cache need a listener "tcp" { address = "127.0.0.1:8100" tls_disable = true } to serve on`)
	}
	if cfg.AutoAuth == nil && cfg.Cache == nil && cfg.APIProxy == nil && len(cfg.Templates) == 0 && cfg.Exec == nil {
		d.errorf(token.Pos{}, "nothing to do: add an auto_auth block (with a sink or a template), or api_proxy with a listener")
	}
	if cfg.ExitAfterAuth && (cfg.Exec != nil || len(cfg.Listeners) > 0) {
		d.errorf(token.Pos{Line: f["exit_after_auth"][0].pos.Line}, "exit_after_auth cannot be combined with exec or a listener, which run until stopped")
	}
}

func (d *decoder) decodeVault(b *ast.ObjectList) Vault {
	v := Vault{NumRetries: DefaultNumRetries}
	f := d.fields(b, "vault", "address", "ca_cert", "ca_path", "client_cert", "client_key",
		"tls_skip_verify", "tls_server_name", "namespace", "retry")
	strs := map[string]*string{"address": &v.Address, "ca_cert": &v.CACert, "ca_path": &v.CAPath,
		"client_cert": &v.ClientCert, "client_key": &v.ClientKey, "tls_server_name": &v.TLSServerName, "namespace": &v.Namespace}
	for k, dst := range strs {
		if it, ok := d.one(f, k); ok {
			*dst, _ = d.str(it)
		}
	}
	if it, ok := d.one(f, "address"); ok && v.Address != "" {
		if !strings.HasPrefix(v.Address, "http://") && !strings.HasPrefix(v.Address, "https://") {
			d.errorf(it.pos, "address %q must be an http:// or https:// URL", v.Address)
		}
	}
	if it, ok := d.one(f, "tls_skip_verify"); ok {
		v.TLSSkipVerify, _ = d.boolean(it)
	}
	if (v.ClientCert == "") != (v.ClientKey == "") {
		pos := token.Pos{}
		for _, k := range []string{"client_cert", "client_key"} {
			if its := f[k]; len(its) > 0 {
				pos = its[0].pos
			}
		}
		d.errorf(pos, "client_cert and client_key must be set together")
	}
	if it, ok := d.one(f, "retry"); ok {
		if rb, ok := d.body(it); ok {
			rf := d.fields(rb, "vault retry", "num_retries")
			if rit, ok := d.one(rf, "num_retries"); ok {
				if n, ok := d.integer(rit); ok {
					switch {
					case n < -1:
						d.errorf(rit.pos, "num_retries must be -1 (no retries), 0 (the default, 12) or a positive number")
					case n == 0:
						v.NumRetries = DefaultNumRetries
					default:
						v.NumRetries = int(n)
					}
				}
			}
		}
	}
	return v
}

func (d *decoder) decodeAutoAuth(at item, b *ast.ObjectList) *AutoAuth {
	a := &AutoAuth{}
	f := d.fields(b, "auto_auth", "method", "sink", "enable_reauth_on_new_credentials")
	methods := d.blocks(f)("method")
	switch len(methods) {
	case 0:
		d.errorf(at.pos, `auto_auth needs a method block, e.g. method "approle" { config = { role_id_file_path = "…" } }`)
	default:
		for _, m := range methods[1:] {
			d.errorf(m.pos, "auto_auth takes one method; the first is at line %d", methods[0].pos.Line)
		}
		if mb, ok := d.body(methods[0]); ok {
			a.Method = d.decodeMethod(methods[0], mb)
		}
	}
	paths := map[string]int{}
	for _, it := range d.blocks(f)("sink") {
		sb, ok := d.body(it)
		if !ok {
			continue
		}
		s, ok := d.decodeSink(it, sb)
		if !ok {
			continue
		}
		if line, dup := paths[s.Path]; dup {
			d.errorf(it.pos, "sink path %s is already used by the sink at line %d", s.Path, line)
			continue
		}
		paths[s.Path] = s.Line
		a.Sinks = append(a.Sinks, s)
	}
	if it, ok := d.one(f, "enable_reauth_on_new_credentials"); ok {
		d.boolean(it)
	}
	return a
}

var methodKeys = map[string][]string{
	"approle":    {"role_id_file_path", "secret_id_file_path", "remove_secret_id_file_after_reading", "secret_id_response_wrapping_path"},
	"token_file": {"token_file_path"},
	"userpass":   {"username", "password", "password_file_path"},
	"kubernetes": {"role", "token_path"},
	"jwt":        {"role", "path", "remove_jwt_after_reading", "remove_jwt_follows_symlinks"},
}

func (d *decoder) decodeMethod(it item, b *ast.ObjectList) Method {
	m := Method{MinBackoff: DefaultMinBackoff, MaxBackoff: DefaultMaxBackoff, Line: it.pos.Line, RemoveSecretIDFile: true, RemoveJWTAfterRead: true}
	f := d.fields(b, "method", "type", "mount_path", "namespace", "wrap_ttl", "min_backoff", "max_backoff", "exit_on_err", "config", "max_retries")
	switch {
	case len(it.labels) == 1:
		m.Type = it.labels[0]
	case len(it.labels) > 1:
		d.errorf(it.pos, "method takes one label, its type")
	}
	if t, ok := d.one(f, "type"); ok {
		if s, ok := d.nonEmpty(t); ok {
			if m.Type != "" && m.Type != s {
				d.errorf(t.pos, "type %q contradicts the block's label %q", s, m.Type)
			}
			m.Type = s
		}
	}
	where := fmt.Sprintf("method %q config", m.Type)
	allowed, known := methodKeys[m.Type]
	switch {
	case m.Type == "":
		d.errorf(it.pos, `method needs a type: method "approle" { … }`)
		return m
	case !known:
		d.errorf(it.pos, "auth method %q is not supported by ledger agent; use approle, token_file, userpass, kubernetes or jwt", m.Type)
		return m
	}
	m.MountPath = "auth/" + m.Type
	if mp, ok := d.one(f, "mount_path"); ok {
		if s, ok := d.nonEmpty(mp); ok {
			m.MountPath = strings.Trim(s, "/")
			if !strings.HasPrefix(m.MountPath, "auth/") {
				m.MountPath = "auth/" + m.MountPath
			}
		}
	}
	if ns, ok := d.one(f, "namespace"); ok {
		if s, ok := d.str(ns); ok && s != "" {
			d.errorf(ns.pos, "namespace %q: Ledger has no namespaces; remove the setting", s)
		}
	}
	if w, ok := d.one(f, "wrap_ttl"); ok {
		d.errorf(w.pos, "wrap_ttl on the auth method (response-wrapped login) is not supported by ledger agent yet")
	}
	if mb, ok := d.one(f, "min_backoff"); ok {
		if v, ok := d.duration(mb); ok && v > 0 {
			m.MinBackoff = v
		}
	}
	if mb, ok := d.one(f, "max_backoff"); ok {
		if v, ok := d.duration(mb); ok && v > 0 {
			m.MaxBackoff = v
		}
	}
	if m.MaxBackoff < m.MinBackoff {
		d.errorf(it.pos, "max_backoff (%s) is shorter than min_backoff (%s)", m.MaxBackoff, m.MinBackoff)
	}
	if e, ok := d.one(f, "exit_on_err"); ok {
		m.ExitOnErr, _ = d.boolean(e)
	}
	if e, ok := d.one(f, "max_retries"); ok {
		d.integer(e)
	}
	var cf map[string][]item
	if c, ok := d.one(f, "config"); ok {
		if cb, ok := d.body(c); ok {
			cf = d.fields(cb, where, allowed...)
		}
	} else {
		cf = map[string][]item{}
	}
	str := func(key string, dst *string, required bool) {
		if v, ok := d.one(cf, key); ok {
			*dst, _ = d.nonEmpty(v)
		} else if required {
			d.errorf(it.pos, "%s needs %s", where, key)
		}
	}
	switch m.Type {
	case "approle":
		str("role_id_file_path", &m.RoleIDFile, true)
		str("secret_id_file_path", &m.SecretIDFile, false)
		if v, ok := d.one(cf, "remove_secret_id_file_after_reading"); ok {
			m.RemoveSecretIDFile, _ = d.boolean(v)
		}
		if v, ok := d.one(cf, "secret_id_response_wrapping_path"); ok {
			d.errorf(v.pos, "secret_id_response_wrapping_path (a response-wrapped secret ID) is not supported by ledger agent yet; write the plain secret ID to secret_id_file_path")
		}
	case "token_file":
		str("token_file_path", &m.TokenFile, true)
	case "userpass":
		str("username", &m.Username, true)
		str("password", &m.Password, false)
		str("password_file_path", &m.PasswordFile, false)
		if (m.Password == "") == (m.PasswordFile == "") && len(d.problems) == 0 {
			d.errorf(it.pos, "%s needs exactly one of password and password_file_path", where)
		}
	case "kubernetes":
		str("role", &m.Role, true)
		m.JWTPath = DefaultKubernetesJWTPath
		str("token_path", &m.JWTPath, false)
	case "jwt":
		str("role", &m.Role, true)
		str("path", &m.JWTPath, true)
		if v, ok := d.one(cf, "remove_jwt_after_reading"); ok {
			m.RemoveJWTAfterRead, _ = d.boolean(v)
		}
		if v, ok := d.one(cf, "remove_jwt_follows_symlinks"); ok {
			m.RemoveJWTFollowLinks, _ = d.boolean(v)
		}
	}
	return m
}

func (d *decoder) decodeSink(it item, b *ast.ObjectList) (Sink, bool) {
	s := Sink{Mode: DefaultSinkMode, Line: it.pos.Line}
	before := len(d.problems)
	switch {
	case len(it.labels) == 1:
		s.Type = it.labels[0]
	case len(it.labels) > 1:
		d.errorf(it.pos, "sink takes one label, its type")
	}
	f := d.fields(b, "sink", "type", "config", "wrap_ttl", "dh_type", "dh_path", "derive_key", "aad", "aad_env_var")
	if t, ok := d.one(f, "type"); ok {
		if v, ok := d.nonEmpty(t); ok {
			s.Type = v
		}
	}
	if s.Type != "file" {
		d.errorf(it.pos, `sink type %q is not supported; only "file" is`, s.Type)
		return s, false
	}
	for _, k := range []string{"wrap_ttl", "dh_type", "dh_path", "derive_key", "aad", "aad_env_var"} {
		if v, ok := d.one(f, k); ok {
			d.errorf(v.pos, "sink %s (wrapped or encrypted sinks) is not supported by ledger agent yet; the token is written as is, protected by the file's mode", k)
		}
	}
	c, ok := d.one(f, "config")
	if !ok {
		d.errorf(it.pos, `sink "file" needs config = { path = "/path/to/token" }`)
		return s, false
	}
	cb, ok := d.body(c)
	if !ok {
		return s, false
	}
	cf := d.fields(cb, `sink "file" config`, "path", "mode")
	if p, ok := d.one(cf, "path"); ok {
		if v, ok := d.nonEmpty(p); ok {
			s.Path = v
			d.checkSinkDir(p.pos, v)
		}
	} else {
		d.errorf(c.pos, `sink "file" config needs path`)
	}
	if m, ok := d.one(cf, "mode"); ok {
		if v, ok := d.fileMode(m); ok {
			s.Mode = v
		}
	}
	return s, len(d.problems) == before
}

// checkSinkDir warns when others can list the directory the token goes to:
// the file's mode protects the token, but its name and timing are visible.
func (d *decoder) checkSinkDir(pos token.Pos, path string) {
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return // created or reported when the sink writes
	}
	if fi.Mode().Perm()&0o004 != 0 {
		d.warnf(pos, "sink path %s is in the world-readable directory %s; other users can see the token file (its mode still guards the token)", path, dir)
	}
}

func (d *decoder) decodeTemplate(it item, b *ast.ObjectList) *Template {
	t := &Template{Line: it.pos.Line, CreateDestDirs: true, CommandTimeout: DefaultCommandTimeout}
	before := len(d.problems)
	f := d.fields(b, "template", "source", "contents", "destination", "perms", "command", "command_timeout",
		"exec", "error_on_missing_key", "left_delimiter", "right_delimiter", "backup", "create_dest_dirs", "wait", "error_fatal")
	if v, ok := d.one(f, "source"); ok {
		t.Source, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "contents"); ok {
		t.Contents, _ = d.str(v)
	}
	_, hasSrc := f["source"]
	_, hasContents := f["contents"]
	if hasSrc == hasContents {
		d.errorf(it.pos, "template needs exactly one of source (a template file) and contents (inline)")
	}
	if v, ok := d.one(f, "destination"); ok {
		t.Destination, _ = d.nonEmpty(v)
	} else {
		d.errorf(it.pos, "template needs destination, the file to write")
	}
	if v, ok := d.one(f, "perms"); ok {
		t.Perms, _ = d.fileMode(v)
	}
	if v, ok := d.one(f, "command"); ok {
		t.Command, _ = d.command(v)
	}
	if v, ok := d.one(f, "command_timeout"); ok {
		if dur, ok := d.duration(v); ok && dur > 0 {
			t.CommandTimeout = dur
		}
	}
	if v, ok := d.one(f, "exec"); ok {
		if _, dup := f["command"]; dup {
			d.errorf(v.pos, "template sets both command and exec; use one")
		}
		if eb, ok := d.body(v); ok {
			ef := d.fields(eb, "template exec", "command", "timeout")
			if c, ok := d.one(ef, "command"); ok {
				t.Command, _ = d.command(c)
			} else {
				d.errorf(v.pos, "template exec needs command")
			}
			if c, ok := d.one(ef, "timeout"); ok {
				if dur, ok := d.duration(c); ok && dur > 0 {
					t.CommandTimeout = dur
				}
			}
		}
	}
	bools := map[string]*bool{"error_on_missing_key": &t.ErrorOnMissingKey, "backup": &t.Backup, "create_dest_dirs": &t.CreateDestDirs}
	for k, dst := range bools {
		if v, ok := d.one(f, k); ok {
			*dst, _ = d.boolean(v)
		}
	}
	if v, ok := d.one(f, "error_fatal"); ok {
		d.boolean(v)
	}
	if v, ok := d.one(f, "left_delimiter"); ok {
		t.LeftDelim, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "right_delimiter"); ok {
		t.RightDelim, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "wait"); ok {
		if wb, ok := d.body(v); ok {
			wf := d.fields(wb, "template wait", "min", "max")
			if m, ok := d.one(wf, "min"); ok {
				t.WaitMin, _ = d.duration(m)
			}
			if m, ok := d.one(wf, "max"); ok {
				t.WaitMax, _ = d.duration(m)
			}
		}
	}
	if len(d.problems) != before {
		return nil
	}
	return t
}

func (d *decoder) decodeTemplateConfig(b *ast.ObjectList, tc *TemplateConfig) {
	f := d.fields(b, "template_config", "exit_on_retry_failure", "static_secret_render_interval",
		"max_connections_per_host", "lease_renewal_threshold")
	if v, ok := d.one(f, "exit_on_retry_failure"); ok {
		tc.ExitOnRetryFailure, _ = d.boolean(v)
	}
	if v, ok := d.one(f, "static_secret_render_interval"); ok {
		if dur, ok := d.duration(v); ok {
			if dur <= 0 {
				d.errorf(v.pos, "static_secret_render_interval must be positive")
			} else {
				tc.StaticSecretRenderInt = dur
			}
		}
	}
	if v, ok := d.one(f, "max_connections_per_host"); ok {
		if n, ok := d.integer(v); ok {
			if n < 0 {
				d.errorf(v.pos, "max_connections_per_host must not be negative")
			}
			tc.MaxConnectionsPerHost = int(n)
		}
	}
	if v, ok := d.one(f, "lease_renewal_threshold"); ok {
		if x, ok := d.float(v); ok {
			if x <= 0 || x >= 1 {
				d.errorf(v.pos, "lease_renewal_threshold must be a fraction between 0 and 1, got %v", x)
			} else {
				tc.LeaseRenewalThreshold = x
			}
		}
	}
}

func (d *decoder) decodeEnvTemplate(it item, b *ast.ObjectList) *EnvTemplate {
	e := &EnvTemplate{Name: it.labels[0], Line: it.pos.Line}
	f := d.fields(b, fmt.Sprintf("env_template %q", e.Name), "contents", "error_on_missing_key", "left_delimiter", "right_delimiter")
	if v, ok := d.one(f, "contents"); ok {
		e.Contents, _ = d.str(v)
	} else {
		d.errorf(it.pos, "env_template %q needs contents", e.Name)
	}
	if v, ok := d.one(f, "error_on_missing_key"); ok {
		e.ErrorOnMissingKey, _ = d.boolean(v)
	}
	if v, ok := d.one(f, "left_delimiter"); ok {
		e.LeftDelim, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "right_delimiter"); ok {
		e.RightDelim, _ = d.nonEmpty(v)
	}
	return e
}

var signals = map[string]syscall.Signal{
	"SIGHUP": syscall.SIGHUP, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "SIGKILL": syscall.SIGKILL,
	"SIGTERM": syscall.SIGTERM, "SIGUSR1": syscall.SIGUSR1, "SIGUSR2": syscall.SIGUSR2,
}

func (d *decoder) decodeExec(it item, b *ast.ObjectList) *Exec {
	e := &Exec{RestartOnSecretChanges: "always", RestartStopSignal: syscall.SIGTERM}
	f := d.fields(b, "exec", "command", "restart_on_secret_changes", "restart_stop_signal", "child_process_stdout", "child_process_stderr")
	if v, ok := d.one(f, "command"); ok {
		if _, isList := v.val.(*ast.ListType); !isList {
			d.errorf(v.pos, `exec command must be a list: command = ["./my-app", "-flag"]`)
		} else {
			e.Command, _ = d.command(v)
		}
	} else {
		d.errorf(it.pos, "exec needs command")
	}
	if v, ok := d.one(f, "restart_on_secret_changes"); ok {
		if s, ok := d.str(v); ok {
			switch s {
			case "always", "never":
				e.RestartOnSecretChanges = s
			default:
				d.errorf(v.pos, `restart_on_secret_changes must be "always" or "never", got %q`, s)
			}
		}
	}
	if v, ok := d.one(f, "restart_stop_signal"); ok {
		if s, ok := d.str(v); ok {
			name := strings.ToUpper(strings.TrimSpace(s))
			if !strings.HasPrefix(name, "SIG") {
				name = "SIG" + name
			}
			if sig, ok := signals[name]; ok {
				e.RestartStopSignal = sig
			} else {
				d.errorf(v.pos, "restart_stop_signal %q is not one of SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGKILL", s)
			}
		}
	}
	if v, ok := d.one(f, "child_process_stdout"); ok {
		e.ChildStdout, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "child_process_stderr"); ok {
		e.ChildStderr, _ = d.nonEmpty(v)
	}
	return e
}

func (d *decoder) decodeAPIProxy(b *ast.ObjectList) *APIProxy {
	p := &APIProxy{}
	f := d.fields(b, "api_proxy", "use_auto_auth_token", "enforce_consistency", "when_inconsistent")
	if v, ok := d.one(f, "use_auto_auth_token"); ok {
		if lit, ok := d.literal(v); ok && lit.Token.Type == token.STRING && strings.EqualFold(lit.Token.Value().(string), "force") {
			p.UseAutoAuthToken, p.ForceAutoAuth = true, true
		} else {
			p.UseAutoAuthToken, _ = d.boolean(v)
		}
	}
	for _, k := range []string{"enforce_consistency", "when_inconsistent"} {
		if v, ok := d.one(f, k); ok {
			// Ledger's standbys forward writes and honour X-Ledger-Index,
			// so there is no inconsistency for the agent to manage.
			d.str(v)
		}
	}
	return p
}

func (d *decoder) decodeListener(it item, b *ast.ObjectList) (Listener, bool) {
	l := Listener{Line: it.pos.Line}
	typ := ""
	if len(it.labels) == 1 {
		typ = it.labels[0]
	}
	f := d.fields(b, fmt.Sprintf("listener %q", typ), "type", "address", "tls_disable", "tls_cert_file", "tls_key_file", "require_request_header")
	if v, ok := d.one(f, "type"); ok {
		typ, _ = d.str(v)
	}
	if typ != "tcp" {
		d.errorf(it.pos, `listener type %q is not supported by ledger agent; only "tcp" is`, typ)
		return l, false
	}
	before := len(d.problems)
	if v, ok := d.one(f, "address"); ok {
		if s, ok := d.nonEmpty(v); ok {
			if _, _, err := net.SplitHostPort(s); err != nil {
				d.errorf(v.pos, "address %q must be host:port: %v", s, err)
			}
			l.Address = s
		}
	} else {
		d.errorf(it.pos, `listener "tcp" needs address, e.g. "127.0.0.1:8100"`)
	}
	if v, ok := d.one(f, "tls_disable"); ok {
		l.TLSDisable, _ = d.boolean(v)
	}
	if v, ok := d.one(f, "tls_cert_file"); ok {
		l.TLSCertFile, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "tls_key_file"); ok {
		l.TLSKeyFile, _ = d.nonEmpty(v)
	}
	if v, ok := d.one(f, "require_request_header"); ok {
		l.RequireRequestHeader, _ = d.boolean(v)
	}
	if !l.TLSDisable && (l.TLSCertFile == "" || l.TLSKeyFile == "") && len(d.problems) == before {
		d.errorf(it.pos, `listener "tcp" needs tls_cert_file and tls_key_file, or tls_disable = true`)
	}
	return l, len(d.problems) == before
}
