package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

const (
	formatTable = "table"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// parseFormat validates a -format value; empty means table.
func parseFormat(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", formatTable:
		return formatTable, nil
	case formatJSON:
		return formatJSON, nil
	case formatYAML, "yml":
		return formatYAML, nil
	}
	return "", fmt.Errorf("invalid output format %q (expected table, json or yaml)", s)
}

// printer renders answers the way Vault's CLI does: Key/Value tables for
// people, the API's own shape for -format=json|yaml, bare values for -field.
type printer struct {
	out    io.Writer
	errOut io.Writer
	format string
}

// Secret prints an API answer; nil prints nothing.
func (p *printer) Secret(s *Secret) error {
	if s == nil {
		return nil
	}
	if p.format != formatTable {
		return p.Structured(s)
	}
	p.Warnings(s.Warnings)
	rows := secretRows(s)
	if len(rows) == 0 {
		return nil
	}
	return p.KeyValue(rows)
}

// Data prints a map as a Key/Value table, or as it is for JSON/YAML.
func (p *printer) Data(m map[string]any) error {
	if p.format != formatTable {
		return p.Structured(m)
	}
	if len(m) == 0 {
		return nil
	}
	return p.KeyValue(mapRows(m))
}

// Structured prints v as indented JSON or as YAML, whatever the format.
func (p *printer) Structured(v any) error {
	var (
		b   []byte
		err error
	)
	if p.format == formatYAML {
		b, err = marshalYAML(v)
	} else {
		b, err = marshalJSON(v)
	}
	if err != nil {
		return err
	}
	_, err = p.out.Write(b)
	return err
}

// List prints keys one per line (Vault sorts them), under a "Keys" header
// when header is set; JSON and YAML print the array.
func (p *printer) List(keys []string, header bool) error {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	if p.format != formatTable {
		return p.Structured(sorted)
	}
	var b strings.Builder
	if header {
		b.WriteString("Keys\n----\n")
	}
	for _, k := range sorted {
		b.WriteString(k + "\n")
	}
	_, err := io.WriteString(p.out, b.String())
	return err
}

// Field prints one value with nothing around it but a trailing newline (in
// table format), so that $(ledger kv get -field=x ...) is the value itself.
func (p *printer) Field(val any, name string) error {
	if val == nil {
		return &cliError{err: fmt.Errorf("Field %q not present in secret", name), code: 1}
	}
	if p.format != formatTable {
		return p.Structured(val)
	}
	_, err := fmt.Fprintf(p.out, "%s\n", cellString(val))
	return err
}

// KeyValue prints a two-column table under a "Key / Value" header.
func (p *printer) KeyValue(rows [][2]string) error {
	table := make([][]string, 0, len(rows)+2)
	table = append(table, []string{"Key", "Value"}, []string{"---", "-----"})
	for _, r := range rows {
		table = append(table, []string{r[0], r[1]})
	}
	_, err := io.WriteString(p.out, columns(table))
	return err
}

// Table prints a table with a header row underlined with dashes.
func (p *printer) Table(header []string, rows [][]string) error {
	under := make([]string, len(header))
	for i, h := range header {
		under[i] = strings.Repeat("-", utf8.RuneCountInString(h))
	}
	table := append([][]string{header, under}, rows...)
	_, err := io.WriteString(p.out, columns(table))
	return err
}

// Println prints a line of text in table format only: success messages
// would corrupt JSON or YAML output.
func (p *printer) Println(text string) {
	if p.format == formatTable {
		fmt.Fprintln(p.out, text)
	}
}

// Warnings prints the server's warnings to stderr.
func (p *printer) Warnings(warnings []string) {
	if len(warnings) == 0 {
		return
	}
	var b strings.Builder
	b.WriteString("WARNING! The following warnings were returned from the server:\n\n")
	for _, w := range warnings {
		b.WriteString("  * " + w + "\n")
	}
	b.WriteString("\n")
	_, _ = io.WriteString(p.errOut, b.String()) // best effort: stderr may be closed
}

// secretRows are the table rows of an answer: lease, then auth, then
// wrapping, then data in key order — Vault's layout.
func secretRows(s *Secret) [][2]string {
	var rows [][2]string
	add := func(k string, v any) { rows = append(rows, [2]string{k, cellString(v)}) }
	if s.LeaseDuration > 0 {
		if s.LeaseID != "" {
			add("lease_id", s.LeaseID)
			add("lease_duration", humanDuration(time.Duration(s.LeaseDuration)*time.Second))
			add("lease_renewable", s.Renewable)
		} else {
			// Static secrets with a TTL (KV v1) get a refresh hint, not a lease.
			add("refresh_interval", humanDuration(time.Duration(s.LeaseDuration)*time.Second))
		}
	}
	if a := s.Auth; a != nil {
		add("token", a.ClientToken)
		add("token_accessor", a.Accessor)
		if a.LeaseDuration == 0 {
			add("token_duration", "∞")
		} else {
			add("token_duration", humanDuration(time.Duration(a.LeaseDuration)*time.Second))
		}
		add("token_renewable", a.Renewable)
		add("token_policies", fmt.Sprintf("%q", nonNil(a.TokenPolicies)))
		add("identity_policies", fmt.Sprintf("%q", nonNil(a.IdentityPolicies)))
		add("policies", fmt.Sprintf("%q", nonNil(a.Policies)))
		metaKeys := make([]string, 0, len(a.Metadata))
		for k := range a.Metadata {
			metaKeys = append(metaKeys, k)
		}
		sort.Strings(metaKeys)
		for _, k := range metaKeys {
			add("token_meta_"+k, a.Metadata[k])
		}
	}
	if w := s.WrapInfo; w != nil {
		add("wrapping_token:", w.Token)
		add("wrapping_accessor:", w.Accessor)
		add("wrapping_token_ttl:", humanDuration(time.Duration(w.TTL)*time.Second))
		add("wrapping_token_creation_time:", w.CreationTime)
		add("wrapping_token_creation_path:", w.CreationPath)
		if w.WrappedAccessor != "" {
			add("wrapped_accessor:", w.WrappedAccessor)
		}
	}
	return append(rows, mapRows(s.Data)...)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// mapRows turns a map into sorted Key/Value rows, printing TTL-like fields
// as durations ("768h") the way Vault does.
func mapRows(m map[string]any) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][2]string, 0, len(keys))
	for _, k := range keys {
		v := m[k]
		if looksLikeDuration(k) {
			v = humanDurationValue(v)
		}
		rows = append(rows, [2]string{k, cellString(v)})
	}
	return rows
}

// rawField finds a -field value in an answer with Vault's lookup rules:
// auth and lease fields by their table names, then the data keys.
func rawField(s *Secret, field string) any {
	if s == nil {
		return nil
	}
	if a := s.Auth; a != nil {
		switch field {
		case "token":
			return a.ClientToken
		case "token_accessor":
			return a.Accessor
		case "token_duration":
			return a.LeaseDuration
		case "token_renewable":
			return a.Renewable
		case "token_policies":
			return a.TokenPolicies
		case "identity_policies":
			return a.IdentityPolicies
		case "policies":
			return a.Policies
		}
		return s.Data[field]
	}
	if w := s.WrapInfo; w != nil {
		switch field {
		case "wrapping_token":
			return w.Token
		case "wrapping_accessor":
			return w.Accessor
		case "wrapping_token_ttl":
			return w.TTL
		case "wrapping_token_creation_time":
			return w.CreationTime
		case "wrapping_token_creation_path":
			return w.CreationPath
		case "wrapped_accessor":
			return w.WrappedAccessor
		}
		return s.Data[field]
	}
	switch field {
	case "lease_duration", "refresh_interval":
		return s.LeaseDuration
	case "lease_id":
		return s.LeaseID
	case "request_id":
		return s.RequestID
	case "renewable", "lease_renewable":
		return s.Renewable
	case "data":
		if v, ok := s.Data["data"]; ok {
			return v
		}
		return s.Data
	}
	return s.Data[field]
}

// cellString is Vault's %v rendering of a value, with json.Number kept as
// written.
func cellString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return "<nil>"
	}
	return fmt.Sprintf("%v", v)
}

func looksLikeDuration(k string) bool {
	return k == "period" || strings.HasSuffix(k, "_period") ||
		k == "ttl" || strings.HasSuffix(k, "_ttl")
}

// humanDurationValue renders a number of seconds as a duration; anything
// that is not a number is left alone.
func humanDurationValue(v any) any {
	var secs int64
	switch n := v.(type) {
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil {
				return v
			}
			i = int64(f)
		}
		secs = i
	case int:
		secs = int64(n)
	case int64:
		secs = n
	case float64:
		secs = int64(n)
	case string:
		i, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			return v
		}
		secs = i
	default:
		return v
	}
	return humanDuration(time.Duration(secs) * time.Second)
}

// humanDuration drops the zero minutes and seconds Go prints: 768h, not
// 768h0m0s.
func humanDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if i := strings.Index(s, "h0m"); i > 0 {
		s = s[:i+1] + s[i+3:]
	}
	return s
}

// columns lays rows out like Vault's columnize: cells trimmed, empty cells
// shown as "n/a", columns separated by four spaces, the last one unpadded.
func columns(rows [][]string) string {
	var widths []int
	cells := make([][]string, len(rows))
	for r, row := range rows {
		cells[r] = make([]string, len(row))
		for i, c := range row {
			c = strings.TrimSpace(c)
			if c == "" {
				c = "n/a"
			}
			cells[r][i] = c
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			if n := utf8.RuneCountInString(c); n > widths[i] {
				widths[i] = n
			}
		}
	}
	var b strings.Builder
	for _, row := range cells {
		for i, c := range row {
			b.WriteString(c)
			if i < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+4))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return buf.Bytes(), nil
}

// marshalYAML goes through JSON so that YAML keys are the API's field names
// and numbers stay numbers.
func marshalYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(yamlNumbers(generic)); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// yamlNumbers replaces json.Number (a string type, which YAML would quote)
// with int64 or float64.
func yamlNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		if f, err := v.Float64(); err == nil {
			return f
		}
		return v.String()
	case map[string]any:
		for k, e := range v {
			v[k] = yamlNumbers(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = yamlNumbers(e)
		}
		return v
	}
	return v
}
