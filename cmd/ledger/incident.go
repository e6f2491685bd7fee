package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ledger-secrets/ledger/commands"
	"github.com/ledger-secrets/ledger/engines/passwordpolicy"
)

// `ledger incident VALUE | -path PATH [-version N]`: the report of sys/ledger/incident, and
// with -contain the lockdown, each step its own (audited) request.

// defaultContainPolicy is the password policy a new KV value is generated with when
// -password-policy names none on the server: 32 characters, every class present.
const defaultContainPolicy = `length = 32
rule "charset" {
  charset = "abcdefghijklmnopqrstuvwxyz"
  min-chars = 2
}
rule "charset" {
  charset = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
  min-chars = 2
}
rule "charset" {
  charset = "0123456789"
  min-chars = 2
}
rule "charset" {
  charset = "-_.~"
  min-chars = 1
}`

// incidentReport is what sys/ledger/incident answers, as far as the CLI reads it.
type incidentReport struct {
	Found     bool                     `json:"found"`
	Message   string                   `json:"message,omitempty"`
	Since     string                   `json:"since,omitempty"`
	Generated string                   `json:"generated_at"`
	Scanned   int                      `json:"scanned_records"`
	Targets   []map[string]any         `json:"targets"`
	Events    []commands.IncidentEvent `json:"events"`
	Readers   []incidentReader         `json:"readers"`
	Contain   []map[string]any         `json:"contain"`
	Timeline  []timelineStep           `json:"timeline,omitempty"`
}

type incidentReader struct {
	Accessor    string                 `json:"accessor"`
	Self        bool                   `json:"self"`
	FirstRead   string                 `json:"first_read"`
	TokenLive   bool                   `json:"token_live"`
	DisplayName string                 `json:"display_name,omitempty"`
	EntityID    string                 `json:"entity_id,omitempty"`
	Policies    []string               `json:"policies,omitempty"`
	ExpireTime  string                 `json:"expire_time,omitempty"`
	Leases      []map[string]any       `json:"leases"`
	Touched     []commands.TouchedPath `json:"touched_since"`
}

type timelineStep struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Result string    `json:"result"`
}

func (a *app) incidentCmd() *cobra.Command {
	var (
		path, since, pwPolicy string
		version               int
		contain, yes          bool
	)
	cmd := &cobra.Command{
		Use:   "incident [flags] [--] VALUE | -path PATH",
		Short: "Who wrote and read a leaked value, what they hold now; -contain locks it down",
		Long: `Report on a leaked value (or a secret by -path): the secret and version it
belongs to, when it was written and by whom, every request that returned it
(time, accessor, entity, remote address, token policies) from the audit trail,
the tokens and leases those readers hold now, and what else they touched since.
VALUE "-" reads the value from stdin (keeps it out of shell history); a value
that begins with '-' goes after "--" (ledger incident -- -value).

-contain then locks it down, each step confirmed (or all with -yes) and each
its own audited request: a new KV version with a generated value (or a
rotation of the database static role or root), the readers' leases and tokens
revoked; the timeline is printed. Your own token is never revoked.

-format=table|json|markdown. The token needs sudo on sys/ledger/incident.
Exit status: 0 (also when the value is unknown), 2 on an error.`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			format, err := a.leakFormat("table", "json", "markdown")
			if err != nil {
				return err
			}
			body := map[string]any{}
			switch {
			case len(args) == 1 && path != "":
				return usageErr(cmd, errors.New("give VALUE or -path, not both"))
			case len(args) == 1:
				v := args[0]
				if v == "-" {
					if v, err = a.readHidden("Leaked value: "); err != nil {
						return fail("reading the value", err)
					}
				}
				body["value"] = v
			case path != "":
				body["path"] = path
				if version > 0 {
					body["version"] = version
				}
			default:
				return usageErr(cmd, errors.New("give the leaked VALUE, or -path PATH"))
			}
			if since != "" {
				body["since"] = since
			}
			ctx := cmd.Context()
			c, err := a.client()
			if err != nil {
				return err
			}
			var rep incidentReport
			if err := callData(ctx, c, http.MethodPost, "sys/ledger/incident", body, &rep); err != nil {
				return fail("building the incident report", err)
			}
			if !rep.Found {
				fmt.Fprintln(a.stdout, rep.Message)
				return nil
			}
			if contain {
				if err := a.contain(ctx, c, &rep, yes, pwPolicy); err != nil {
					a.printIncident(format, &rep)
					return &cliError{op: "containing", err: err, code: 2}
				}
			}
			return a.printIncident(format, &rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&path, "path", "", "the secret instead of a value: secret/data/app/db, database/static-creds/app")
	f.IntVar(&version, "version", 0, "with -path: one version (default every version)")
	f.StringVar(&since, "since", "", "only audit records since this time (RFC 3339) or this long ago (72h)")
	f.BoolVar(&contain, "contain", false, "lock it down: replace the value, revoke the readers' tokens and leases")
	f.BoolVar(&yes, "yes", false, "with -contain: do every step without asking")
	f.StringVar(&pwPolicy, "password-policy", "", "with -contain: the server's password policy for new KV values (default: 32 characters, every class)")
	return cmd
}

// callData makes a request and decodes its "data" into out.
func callData(ctx context.Context, c *Client, method, path string, body, out any) error {
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := c.Call(ctx, method, path, body, &env); err != nil {
		return err
	}
	if len(env.Data) == 0 {
		return fmt.Errorf("%s: empty answer", path)
	}
	return json.Unmarshal(env.Data, out)
}

// contain carries out the report's steps, each confirmed unless yes.
func (a *app) contain(ctx context.Context, c *Client, rep *incidentReport, yes bool, pwPolicy string) error {
	in := bufio.NewReader(a.stdin)
	if len(rep.Contain) == 0 {
		fmt.Fprintln(a.stderr, "contain: nothing to do (no live value, no reader holding a token or lease)")
	}
	for i, step := range rep.Contain {
		action, _ := step["action"].(string)
		target, _ := step["path"].(string)
		desc := action + " " + target
		switch action {
		case "revoke-lease":
			desc = "revoke lease " + fmt.Sprint(step["lease_id"])
		case "revoke-token":
			desc = "revoke token with accessor " + fmt.Sprint(step["accessor"])
		}
		if !yes {
			fmt.Fprintf(a.stderr, "Step %d/%d: %s? [y/N] ", i+1, len(rep.Contain), desc)
			line, err := in.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return err
			}
			if ans := strings.ToLower(strings.TrimSpace(line)); ans != "y" && ans != "yes" {
				rep.Timeline = append(rep.Timeline, timelineStep{Time: time.Now().UTC(), Action: action, Target: desc, Result: "skipped"})
				continue
			}
		}
		err := a.containStep(ctx, c, step, pwPolicy)
		res := "done"
		if err != nil {
			res = "failed: " + err.Error()
		}
		rep.Timeline = append(rep.Timeline, timelineStep{Time: time.Now().UTC(), Action: action, Target: desc, Result: res})
		fmt.Fprintf(a.stderr, "contain: %s: %s\n", desc, res)
		if err != nil && (action == "rotate-role" || action == "rotate-root" || action == "write-new-version") {
			return fmt.Errorf("%s: %w (the value is still live: fix the cause and run again)", desc, err)
		}
	}
	return nil
}

func (a *app) containStep(ctx context.Context, c *Client, step map[string]any, pwPolicy string) error {
	path, _ := step["path"].(string)
	switch step["action"] {
	case "rotate-role", "rotate-root":
		_, err := c.Post(ctx, path, map[string]any{})
		return err
	case "destroy-secret-id":
		_, err := c.Post(ctx, path, map[string]any{"secret_id_accessor": step["secret_id_accessor"]})
		return err
	case "revoke-lease":
		_, err := c.Put(ctx, "sys/leases/revoke", map[string]any{"lease_id": step["lease_id"]})
		return err
	case "revoke-token":
		_, err := c.Post(ctx, "auth/token/revoke-accessor", map[string]any{"accessor": step["accessor"]})
		return err
	case "write-new-version":
		var fields []string
		if fs, ok := step["fields"].([]any); ok {
			for _, f := range fs {
				if s, ok := f.(string); ok && s != "" && !strings.Contains(s, ".") {
					fields = append(fields, s)
				}
			}
		}
		if len(fields) == 0 {
			return errors.New("no top-level field to replace: write a new version by hand")
		}
		data := map[string]any{}
		for _, f := range fields {
			pw, err := a.generate(ctx, c, pwPolicy)
			if err != nil {
				return err
			}
			data[f] = pw
		}
		if v, _ := step["kv_version"].(float64); v == 2 {
			_, err := c.Patch(ctx, path, map[string]any{"data": data})
			return err
		}
		cur, err := c.Get(ctx, path, nil)
		if err != nil {
			return err
		}
		merged := map[string]any{}
		if cur != nil {
			for k, v := range cur.Data {
				merged[k] = v
			}
		}
		for k, v := range data {
			merged[k] = v
		}
		_, err = c.Put(ctx, path, merged)
		return err
	}
	return fmt.Errorf("unknown step %v", step["action"])
}

// generate makes a new value: from the server's password policy when named, else locally by
// defaultContainPolicy (the same generator the server's policies use).
func (a *app) generate(ctx context.Context, c *Client, policy string) (string, error) {
	if policy != "" {
		s, err := c.Get(ctx, "sys/policies/password/"+policy+"/generate", nil)
		if err != nil {
			return "", err
		}
		if s == nil {
			return "", fmt.Errorf("password policy %q does not exist", policy)
		}
		pw, _ := s.Data["password"].(string)
		if pw == "" {
			return "", fmt.Errorf("password policy %q generated nothing", policy)
		}
		return pw, nil
	}
	p, err := passwordpolicy.Parse(defaultContainPolicy)
	if err != nil {
		return "", err
	}
	return p.Generate(ctx)
}

func (a *app) printIncident(format string, rep *incidentReport) error {
	switch format {
	case "json":
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	case "markdown":
		return printIncidentMarkdown(a.stdout, rep)
	}
	return printIncidentTable(a.stdout, rep)
}

func str(m map[string]any, k string) string {
	if v, ok := m[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

func writerOf(t map[string]any) string {
	w, ok := t["writer"].(map[string]any)
	if !ok {
		if b := str(t, "written_by"); b != "" {
			return "accessor " + b
		}
		return "(unknown: backfilled or system)"
	}
	s := str(w, "display_name")
	if s == "" {
		s = "accessor " + str(w, "accessor")
	} else {
		s += " (accessor " + str(w, "accessor") + ")"
	}
	if r := str(w, "remote_address"); r != "" {
		s += " from " + r
	}
	return s
}

func printIncidentTable(w io.Writer, rep *incidentReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "== Secret ==")
	fmt.Fprintln(tw, "Secret\tVersion\tField\tState\tWritten\tBy")
	for _, t := range rep.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", str(t, "secret_path"), str(t, "version"), str(t, "field"), str(t, "state"), str(t, "written"), writerOf(t))
	}
	fmt.Fprintf(tw, "\n== Requests that returned or carried it (%d; %d audit records scanned) ==\n", len(rep.Events), rep.Scanned)
	fmt.Fprintln(tw, "Time\tKind\tPath\tAccessor\tEntity\tRemote\tPolicies")
	for _, e := range rep.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.Path, e.Accessor, e.EntityID, e.RemoteAddress, strings.Join(e.TokenPolicies, ","))
	}
	fmt.Fprintf(tw, "\n== Readers now ==\n")
	fmt.Fprintln(tw, "Accessor\tToken\tPolicies\tLeases\tTouched since first read")
	for _, r := range rep.Readers {
		tok := "revoked/expired"
		if r.TokenLive {
			tok = "LIVE"
			if r.Self {
				tok += " (you)"
			}
		}
		var touched []string
		for _, t := range r.Touched {
			touched = append(touched, fmt.Sprintf("%s %s ×%d", t.Operation, t.Path, t.Count))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Accessor, tok, strings.Join(r.Policies, ","), len(r.Leases), strings.Join(touched, "; "))
	}
	if len(rep.Timeline) > 0 {
		fmt.Fprintf(tw, "\n== Containment timeline ==\n")
		for _, s := range rep.Timeline {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Time.Format(time.RFC3339), s.Target, s.Result)
		}
	} else if len(rep.Contain) > 0 {
		fmt.Fprintf(tw, "\n== To contain (ledger incident … -contain) ==\n")
		for _, s := range rep.Contain {
			fmt.Fprintf(tw, "%s\t%s%s%s\n", str(s, "action"), str(s, "path"), str(s, "lease_id"), str(s, "accessor"))
		}
	}
	return tw.Flush()
}

func printIncidentMarkdown(w io.Writer, rep *incidentReport) error {
	var b strings.Builder
	b.WriteString("# Incident report\n\n")
	fmt.Fprintf(&b, "Generated %s; %d audit records scanned", rep.Generated, rep.Scanned)
	if rep.Since != "" {
		fmt.Fprintf(&b, " since %s", rep.Since)
	}
	b.WriteString(".\n\n## Secret\n\n| Secret | Version | Field | State | Written | By |\n|---|---|---|---|---|---|\n")
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s |\n", str(t, "secret_path"), str(t, "version"), str(t, "field"), str(t, "state"), str(t, "written"), writerOf(t))
	}
	fmt.Fprintf(&b, "\n## Requests that returned or carried it (%d)\n\n| Time | Kind | Path | Accessor | Entity | Remote | Policies |\n|---|---|---|---|---|---|---|\n", len(rep.Events))
	for _, e := range rep.Events {
		fmt.Fprintf(&b, "| %s | %s | `%s` | %s | %s | %s | %s |\n", e.Time.UTC().Format(time.RFC3339), e.Kind, e.Path, e.Accessor, e.EntityID, e.RemoteAddress, strings.Join(e.TokenPolicies, ", "))
	}
	b.WriteString("\n## Readers now\n\n| Accessor | Token | Policies | Leases | Touched since first read |\n|---|---|---|---|---|\n")
	for _, r := range rep.Readers {
		tok := "revoked or expired"
		if r.TokenLive {
			tok = "**live**"
		}
		var touched []string
		for _, t := range r.Touched {
			touched = append(touched, fmt.Sprintf("%s `%s` ×%d", t.Operation, t.Path, t.Count))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", r.Accessor, tok, strings.Join(r.Policies, ", "), len(r.Leases), strings.Join(touched, "; "))
	}
	if len(rep.Timeline) > 0 {
		b.WriteString("\n## Containment timeline\n\n")
		for _, s := range rep.Timeline {
			fmt.Fprintf(&b, "- %s — %s: %s\n", s.Time.Format(time.RFC3339), s.Target, s.Result)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
