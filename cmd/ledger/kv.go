package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// kvTarget is a path inside a KV mount, resolved the way Vault's CLI does:
// ask sys/internal/ui/mounts which mount holds the path and whether it is
// KV v2, then build the engine's API path (<mount>/data/<rel> and friends).
type kvTarget struct {
	mount   string // "secret" — empty when the server would not say (KV v1)
	rel     string // the path inside the mount
	version int    // 1 or 2
}

// path is the API path for one of KV v2's sub-APIs ("data", "metadata",
// "delete", ...); KV v1 has none and uses <mount>/<rel>.
func (t kvTarget) path(api string) string {
	if t.version != 2 {
		return joinPath(t.mount, t.rel)
	}
	return joinPath(t.mount, api, t.rel)
}

func joinPath(parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.Trim(p, "/"); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "/")
}

// resolveKV finds the mount of arg (or of -mount, when given).
// kvTarget builds the client and resolves PATH's KV mount: the first steps of every kv command.
func (a *app) kvTarget(ctx context.Context, kf kvFlags, arg string, forPolicy bool) (*Client, kvTarget, error) {
	c, err := a.client()
	if err != nil {
		return nil, kvTarget{}, err
	}
	t, err := resolveKV(ctx, c, kf.mount, arg, forPolicy)
	return c, t, err
}

func resolveKV(ctx context.Context, c *Client, mountFlag, arg string, forPolicy bool) (kvTarget, error) {
	arg = sanitizePath(arg)
	probe := arg
	if mountFlag != "" {
		probe = sanitizePath(mountFlag)
	}
	mount, version, err := kvPreflight(ctx, c, probe)
	if err != nil {
		var apiErr *APIError
		hint := ""
		if forPolicy && errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusForbidden {
			hint = fmt.Sprintf("-output-policy needs to look up the mount of %s first: use a token that can read it (for KV v2, a policy on <mount>/data/...).", probe)
		}
		return kvTarget{}, &cliError{op: "finding the mount of " + probe, err: err, hint: hint}
	}
	if mountFlag != "" {
		return kvTarget{mount: sanitizePath(mountFlag), rel: arg, version: version}, nil
	}
	if mount == "" {
		return kvTarget{rel: arg, version: version}, nil
	}
	m := sanitizePath(mount)
	switch {
	case arg == m:
		return kvTarget{mount: m, version: version}, nil
	case strings.HasPrefix(arg, m+"/"):
		return kvTarget{mount: m, rel: arg[len(m)+1:], version: version}, nil
	}
	return kvTarget{}, &cliError{op: "finding the mount of " + arg, err: fmt.Errorf("the server placed it in mount %q, which is not a prefix of the path", mount), code: 2}
}

// kvPreflight asks the server for the mount of path. A 404 means the
// server predates the endpoint: assume KV v1, as Vault's CLI does.
func kvPreflight(ctx context.Context, c *Client, path string) (mount string, version int, err error) {
	s, err := c.Get(ctx, "sys/internal/ui/mounts/"+path, nil)
	if err != nil {
		return "", 0, err
	}
	if s == nil {
		return "", 1, nil
	}
	d := s.DataOrTop()
	mount = stringOf(d["path"])
	typ := stringOf(d["type"])
	if stringOf(mapOf(d["options"])["version"]) == "2" && (typ == "" || typ == "kv" || typ == "generic") {
		return mount, 2, nil
	}
	return mount, 1, nil
}

func (a *app) kvCmd() *cobra.Command {
	return group("kv", "Read and write secrets in KV engines (v1 and v2)",
		a.kvGetCmd(),
		a.kvPutCmd(),
		a.kvPatchCmd(),
		a.kvDeleteCmd(),
		a.kvVersionsCmd("undelete", "Restore deleted versions of a secret", "undeleting"),
		a.kvVersionsCmd("destroy", "Permanently destroy versions of a secret", "destroying"),
		a.kvListCmd(),
		a.kvMetadataCmd(),
		a.kvRollbackCmd(),
	)
}

// kvFlags are the flags every kv command shares.
type kvFlags struct {
	mount string
}

func (f *kvFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.mount, "mount", "", "the KV mount; PATH is then relative to it (e.g. -mount=secret foo)")
}

func (a *app) kvGetCmd() *cobra.Command {
	var (
		kf           kvFlags
		pf           pointFlags
		version      int
		field        string
		outputPolicy bool
	)
	cmd := &cobra.Command{
		Use:   "get [flags] PATH",
		Short: "Read a secret (the latest version, or -version=N; as it was with -at or -at-seq)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, t, err := a.kvTarget(ctx, kf, args[0], outputPolicy)
			if err != nil {
				return err
			}
			full := t.path("data")
			if outputPolicy {
				_, err := fmt.Fprint(a.stdout, pf.policy(cmd, full))
				return err
			}
			p, err := a.printer()
			if err != nil {
				return err
			}
			var query url.Values
			if version > 0 {
				query = url.Values{"version": {strconv.Itoa(version)}}
			}
			readPath, query, err := pf.apply(cmd, full, query)
			if err != nil {
				return err
			}
			s, err := c.Get(ctx, readPath, query)
			if err != nil {
				return fail("reading "+full, err)
			}
			if s == nil {
				return noValue(full)
			}
			if s.WrapInfo != nil {
				return printWrapped(p, s, field)
			}
			if field != "" {
				return kvField(p, s, t, full, field)
			}
			if p.format != formatTable || t.version != 2 {
				return p.Secret(s)
			}
			p.Warnings(s.Warnings)
			printPathBanner(p, "Secret Path", full)
			if md := mapOf(s.Data["metadata"]); md != nil {
				if err := printSection(p, "Metadata", md); err != nil {
					return err
				}
			}
			if data := mapOf(s.Data["data"]); data != nil {
				fmt.Fprintln(p.out)
				return printSection(p, "Data", data)
			}
			return nil
		},
	}
	kf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&version, "version", 0, "the version to read (default: the latest)")
	pf.register(cmd)
	f.StringVar(&field, "field", "", "print only this key of the secret, with no decoration")
	f.BoolVar(&outputPolicy, "output-policy", false, "print the policy this request needs instead of sending it")
	return cmd
}

// kvField prints one key of a secret: for KV v2 the key is looked up in the
// secret's data, not in the envelope.
func kvField(p *printer, s *Secret, t kvTarget, full, field string) error {
	if t.version != 2 {
		return p.Field(rawField(s, field), field)
	}
	data := mapOf(s.Data["data"])
	if data == nil {
		return &cliError{err: fmt.Errorf("No data found at %s", full), code: 2}
	}
	if field == "data" {
		// A literal "data" means the data block, unless the secret has a key by that name.
		if _, ok := data["data"]; !ok {
			return p.Field(data, field)
		}
	}
	return p.Field(data[field], field)
}

// printPathBanner and printSection give kv output Vault's sectioned look.
func printPathBanner(p *printer, title, path string) {
	fmt.Fprintf(p.out, "%s\n%s\n\n", banner(title, len(path)), path)
}

func printSection(p *printer, title string, m map[string]any) error {
	// Vault sizes the banner from the longest key, plus the column gap and "Value".
	keyWidth := 0
	for k := range m {
		keyWidth = max(keyWidth, len(k))
	}
	fmt.Fprintln(p.out, banner(title, keyWidth+4+len("Value")))
	return p.KeyValue(mapRows(m))
}

// banner centres title in a line of '=' about width wide.
func banner(title string, width int) string {
	pad := width - len(title) - 2
	if pad < 4 {
		pad = 4
	}
	if pad%2 != 0 {
		pad++
	}
	side := strings.Repeat("=", pad/2)
	return side + " " + title + " " + side
}

func (a *app) kvPutCmd() *cobra.Command {
	var (
		kf           kvFlags
		cas          int
		field        string
		outputPolicy bool
	)
	cmd := &cobra.Command{
		Use:   "put [flags] PATH K=V...",
		Short: "Write a new version of a secret",
		Long: `Write a new version of a secret, replacing all its keys. Data is given as K=V
pairs: K=@FILE reads the value from a file, K=- from stdin; a lone "-" reads a
JSON object from stdin. -cas=N writes only if the current version is N (0:
only if the secret does not exist).`,
		Args: minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.kvWrite(cmd, kf, args, http.MethodPut, cas, nil, field, outputPolicy)
		},
	}
	kf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&cas, "cas", -1, "check-and-set: write only if the current version is this (KV v2)")
	f.StringVar(&field, "field", "", "print only this field of the answer")
	f.BoolVar(&outputPolicy, "output-policy", false, "print the policy this request needs instead of sending it")
	return cmd
}

func (a *app) kvPatchCmd() *cobra.Command {
	var (
		kf     kvFlags
		cas    int
		field  string
		remove []string
	)
	cmd := &cobra.Command{
		Use:   "patch [flags] PATH K=V...",
		Short: "Change some keys of a secret, keeping the others (KV v2)",
		Args:  minArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.kvWrite(cmd, kf, args, http.MethodPatch, cas, remove, field, false)
		},
	}
	kf.register(cmd)
	f := cmd.Flags()
	f.IntVar(&cas, "cas", -1, "check-and-set: patch only if the current version is this")
	f.StringVar(&field, "field", "", "print only this field of the answer")
	f.StringArrayVar(&remove, "remove-data", nil, "remove this key from the secret (repeatable)")
	return cmd
}

// kvWrite is kv put (PUT, all keys) and kv patch (merge patch, KV v2 only).
func (a *app) kvWrite(cmd *cobra.Command, kf kvFlags, args []string, method string, cas int, remove []string, field string, outputPolicy bool) error {
	ctx := cmd.Context()
	c, t, err := a.kvTarget(ctx, kf, args[0], outputPolicy)
	if err != nil {
		return err
	}
	full := t.path("data")
	if outputPolicy {
		_, err := fmt.Fprint(a.stdout, policyFor(method, full))
		return err
	}
	p, err := a.printer()
	if err != nil {
		return err
	}
	if method == http.MethodPatch && t.version != 2 {
		return &cliError{err: errors.New("K/V engine mount must be version 2 for patch support"), code: 2}
	}
	data, err := parseData(args[1:], a.stdin)
	if err != nil {
		return &cliError{op: "parsing K=V data", err: err, code: 1}
	}
	for _, k := range remove {
		data[k] = nil // JSON merge patch: null removes the key
	}
	if len(data) == 0 {
		return &cliError{err: errors.New("Must supply data"), code: 1}
	}
	var body any = data
	if t.version == 2 {
		v2 := map[string]any{"data": data}
		if cas >= 0 {
			v2["options"] = map[string]any{"cas": cas}
		}
		body = v2
	} else if cas >= 0 {
		return &cliError{err: errors.New("-cas requires a KV v2 mount"), code: 1}
	}
	var s *Secret
	if method == http.MethodPatch {
		s, err = c.Patch(ctx, full, body)
	} else {
		s, err = c.Put(ctx, full, body)
	}
	if err != nil {
		return fail("writing data to "+full, err)
	}
	return printKVWritten(p, s, t, full, field)
}

// printKVWritten prints the answer to a KV write: the new version's
// metadata for v2, a success line otherwise.
func printKVWritten(p *printer, s *Secret, t kvTarget, full, field string) error {
	if s == nil {
		p.Println("Success! Data written to: " + full)
		return nil
	}
	if field != "" {
		return p.Field(rawField(s, field), field)
	}
	if p.format != formatTable || t.version != 2 {
		return p.Secret(s)
	}
	p.Warnings(s.Warnings)
	printPathBanner(p, "Secret Path", full)
	return printSection(p, "Metadata", s.Data)
}

func (a *app) kvDeleteCmd() *cobra.Command {
	var (
		kf       kvFlags
		versions []int
	)
	cmd := &cobra.Command{
		Use:   "delete [flags] PATH",
		Short: "Delete the latest version of a secret (or -versions=1,2); undelete can restore it",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			var path string
			switch {
			case len(versions) > 0 && t.version != 2:
				return &cliError{err: errors.New("-versions requires a KV v2 mount"), code: 1}
			case len(versions) > 0:
				path = t.path("delete")
				_, err = c.Put(ctx, path, map[string]any{"versions": versions})
			default:
				path = t.path("data")
				_, err = c.Delete(ctx, path)
			}
			if err != nil {
				return fail("deleting "+path, err)
			}
			fmt.Fprintln(a.stdout, "Success! Data deleted (if it existed) at: "+path)
			return nil
		},
	}
	kf.register(cmd)
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "the versions to delete (default: the latest)")
	return cmd
}

// kvVersionsCmd is kv undelete and kv destroy: PUT <mount>/<verb>/<path>
// with the versions.
func (a *app) kvVersionsCmd(verb, short, doing string) *cobra.Command {
	var (
		kf       kvFlags
		versions []int
	)
	cmd := &cobra.Command{
		Use:   verb + " -versions=N[,N...] [flags] PATH",
		Short: short + " (KV v2)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(versions) == 0 {
				return usageErr(cmd, fmt.Errorf("no versions given: use -versions=N[,N...]"))
			}
			ctx := cmd.Context()
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			if t.version != 2 {
				return &cliError{err: fmt.Errorf("K/V engine mount must be version 2 for %s support", verb), code: 2}
			}
			path := t.path(verb)
			if _, err := c.Put(ctx, path, map[string]any{"versions": versions}); err != nil {
				return fail(doing+" "+t.path("data"), err)
			}
			fmt.Fprintln(a.stdout, "Success! Data written to: "+path)
			return nil
		},
	}
	kf.register(cmd)
	cmd.Flags().IntSliceVar(&versions, "versions", nil, "the versions, comma-separated or repeated")
	return cmd
}

func (a *app) kvListCmd() *cobra.Command {
	var kf kvFlags
	cmd := &cobra.Command{
		Use:   "list [flags] PATH",
		Short: "List the secrets under a path",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			path := t.path("metadata")
			s, err := c.List(ctx, path)
			if err != nil {
				return fail("listing "+path, err)
			}
			return printKeys(p, s, path)
		},
	}
	kf.register(cmd)
	return cmd
}

func (a *app) kvRollbackCmd() *cobra.Command {
	var (
		kf      kvFlags
		version int
		field   string
	)
	cmd := &cobra.Command{
		Use:   "rollback -version=N [flags] PATH",
		Short: "Write an old version's data as the newest version (KV v2)",
		Long: `Write the data of version N as a new version, so the secret reads as it did
at N while its history is kept. The server copies the data (POST
<mount>/rollback/<path>): it never reaches the client, and the token needs
only update on <mount>/rollback/<path>, not read on the data. The write is
check-and-set against the current version, so a concurrent write makes it
fail rather than be lost.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if version <= 0 {
				return usageErr(cmd, fmt.Errorf("give the version to roll back to with -version=N (N > 0)"))
			}
			ctx := cmd.Context()
			p, err := a.printer()
			if err != nil {
				return err
			}
			c, t, err := a.kvTarget(ctx, kf, args[0], false)
			if err != nil {
				return err
			}
			if t.version != 2 {
				return &cliError{err: errors.New("K/V engine mount must be version 2 for rollback support"), code: 2}
			}
			s, err := rollbackServerSide(ctx, c, t, version)
			if err != nil {
				return err
			}
			return printKVWritten(p, s, t, t.path("data"), field)
		},
	}
	kf.register(cmd)
	cmd.Flags().IntVar(&version, "version", 0, "the version to roll back to")
	cmd.Flags().StringVar(&field, "field", "", "print only this field of the answer")
	return cmd
}

// rollbackServerSide asks the server to write version N's data as a new
// version (Ledger's <mount>/rollback/<path>), which refuses a destroyed,
// deleted or missing version and checks-and-sets against the current one.
func rollbackServerSide(ctx context.Context, c *Client, t kvTarget, version int) (*Secret, error) {
	path := t.path("rollback")
	s, err := c.Post(ctx, path, map[string]any{"version": version})
	if err != nil {
		return nil, fail("rolling back "+t.path("data")+" to version "+strconv.Itoa(version), err)
	}
	return s, nil
}
