// Package importer moves a running Vault or OpenBao — or another Ledger — into Ledger through
// both servers' HTTP APIs, with the official Vault client on both sides: mounts and their
// tuning, ACL and password policies, KV v1 values and every KV v2 version with its history,
// transit keys that may leave the source, auth method roles and users, database connections
// and roles, and identity entities and groups.
//
// Every write goes through Ledger's API, so every imported item is an ordinary, audited event.
// A run keeps no state file: what Ledger already holds is the state. KV v2 versions carry the
// source's created_time, so a version already here is recognised as imported (and skipped), and
// one that differs is a conflict. A run killed half-way therefore resumes where it stopped, and
// a second run imports only what changed. Nothing already in Ledger is overwritten without
// Options.Overwrite.
//
// No value read from the source is ever put into a report item, an error or the progress line.
package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/api"
)

// Options configure one import.
type Options struct {
	// Include and Exclude are path globs over item paths (secret/app/db, sys/policies/acl/x,
	// auth/approle/role/web, transit/keys/k): "*" matches any run of characters, "/" included.
	// An item is imported when it matches an Include (or there are none) and no Exclude.
	Include, Exclude []string
	DryRun           bool
	Overwrite        bool
	SkipUnsupported  bool
	// Workers bounds how many KV paths (and other items) are imported at once.
	Workers int
	// DatabasePassword returns the password of a database connection, which the source never
	// reveals; ok false leaves the connection without one (it is then listed).
	DatabasePassword func(ctx context.Context, mount, name string) (password string, ok bool, err error)
	// AuthSecret returns the secret field of an auth method's configuration (field:
	// oidc_client_secret for JWT/OIDC, token_reviewer_jwt for Kubernetes), which the source
	// never reveals; ok false imports the configuration without it (it is then listed).
	AuthSecret func(ctx context.Context, mount, field string) (secret string, ok bool, err error)
	// Progress receives a progress line now and then (counts and rate); nil: none.
	Progress io.Writer
	// ProgressEvery is how often a progress line is written (default 1s).
	ProgressEvery time.Duration
}

// Status says what became of an item.
type Status string

const (
	Imported    Status = "imported"     // written to Ledger
	Updated     Status = "updated"      // was here from an earlier run; brought up to date
	Unchanged   Status = "unchanged"    // already here, equal
	WouldImport Status = "would import" // -dry-run
	Conflict    Status = "conflict"     // Ledger holds something else here; not overwritten
	Unreadable  Status = "unreadable"   // the source would not let us read it
	Unsupported Status = "unsupported"  // a mount type Ledger does not serve
	Reissue     Status = "re-issue"     // imported, but a secret part must be set by hand
	NotMovable  Status = "not movable"  // cannot leave the source (e.g. a non-exportable key)
	Failed      Status = "failed"       // Ledger refused the write
)

// Item is one line of the report. Reason never holds a value read from the source.
type Item struct {
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Status Status `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Versions counts the KV versions written by this run.
	Versions int `json:"versions,omitempty"`
	// Changed says the source changed while this item was imported; it was re-read and
	// reconciled.
	Changed bool `json:"source_changed,omitempty"`
}

// Report is the outcome of a run.
type Report struct {
	Source   string         `json:"source"`
	DryRun   bool           `json:"dry_run"`
	Started  time.Time      `json:"started"`
	Duration string         `json:"duration"`
	Counts   map[Status]int `json:"counts"`
	Items    []Item         `json:"items"`
	// KVPaths and KVVersions count the KV paths seen and versions written.
	KVPaths    int `json:"kv_paths"`
	KVVersions int `json:"kv_versions"`
}

// Problems are the items that were not fully moved: everything but imported, updated,
// unchanged and would-import.
func (r *Report) Problems() []Item {
	var out []Item
	for _, it := range r.Items {
		switch it.Status {
		case Imported, Updated, Unchanged, WouldImport:
		default:
			out = append(out, it)
		}
	}
	return out
}

// Errors a run returns before it imports anything.
var (
	ErrSourceSealed      = errors.New("the source is sealed")
	ErrTargetSealed      = errors.New("ledger is sealed")
	ErrUnsupportedMounts = errors.New("the source has mounts of types Ledger does not support")
)

// importer is one run.
type importer struct {
	src, dst *api.Client
	opt      Options
	include  []*regexp.Regexp
	exclude  []*regexp.Regexp

	mu    sync.Mutex
	items []Item

	// Progress counters.
	total, done, versions atomic.Int64

	// dstAccessors maps an auth mount path to its accessor in Ledger, srcAccessors the
	// source's accessor to the mount path (identity aliases name mounts by accessor).
	dstAccessors map[string]string
	srcAccessors map[string]string
}

// Run imports from src into dst. It returns an error only when nothing could be done (a sealed
// or unreachable server, unsupported mounts without SkipUnsupported); everything else is in
// the report.
func Run(ctx context.Context, src, dst *api.Client, opt Options) (*Report, error) {
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.ProgressEvery <= 0 {
		opt.ProgressEvery = time.Second
	}
	im := &importer{src: src, dst: dst, opt: opt, dstAccessors: map[string]string{}, srcAccessors: map[string]string{}}
	var err error
	if im.include, err = compileGlobs(opt.Include); err != nil {
		return nil, err
	}
	if im.exclude, err = compileGlobs(opt.Exclude); err != nil {
		return nil, err
	}
	if err := checkUnsealed(ctx, src, ErrSourceSealed); err != nil {
		return nil, err
	}
	if err := checkUnsealed(ctx, dst, ErrTargetSealed); err != nil {
		return nil, err
	}
	started := time.Now()
	stop := im.startProgress()
	err = im.run(ctx)
	stop()
	rep := &Report{Source: src.Address(), DryRun: opt.DryRun, Started: started.UTC(),
		Duration: time.Since(started).Round(time.Millisecond).String(), Counts: map[Status]int{}}
	im.mu.Lock()
	rep.Items = append([]Item{}, im.items...)
	im.mu.Unlock()
	sort.SliceStable(rep.Items, func(i, j int) bool {
		if rep.Items[i].Kind != rep.Items[j].Kind {
			return kindOrder(rep.Items[i].Kind) < kindOrder(rep.Items[j].Kind)
		}
		return rep.Items[i].Path < rep.Items[j].Path
	})
	for _, it := range rep.Items {
		rep.Counts[it.Status]++
		if it.Kind == KindKV2 || it.Kind == KindKV1 {
			rep.KVPaths++
		}
	}
	rep.KVVersions = int(im.versions.Load())
	return rep, err
}

// checkUnsealed asks sys/seal-status, which needs no token: a sealed or unreachable server
// stops the run before anything is read or written.
func checkUnsealed(ctx context.Context, c *api.Client, sealed error) error {
	st, err := c.Sys().SealStatusWithContext(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", c.Address(), err)
	}
	if st.Sealed {
		return fmt.Errorf("%s: %w", c.Address(), sealed)
	}
	return nil
}

func (im *importer) add(it Item) {
	im.mu.Lock()
	im.items = append(im.items, it)
	im.mu.Unlock()
}

// run imports in dependency order: mounts first (everything lives in one), policies, the
// identity store (its aliases name auth mounts), then every mount's contents.
func (im *importer) run(ctx context.Context) error {
	mounts, err := im.importMounts(ctx)
	if err != nil {
		return err
	}
	im.importPolicies(ctx)
	im.importPasswordPolicies(ctx)
	if err := ctx.Err(); err != nil {
		return err
	}
	im.importIdentity(ctx)
	sem := make(chan struct{}, im.opt.Workers)
	var wg sync.WaitGroup
	// Each job is one item; mounts enumerate their items into the shared pool.
	spawn := func(f func()) {
		im.total.Add(1)
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			im.done.Add(1)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer im.done.Add(1)
			if ctx.Err() == nil {
				f()
			}
		}()
	}
	for _, m := range mounts {
		if ctx.Err() != nil {
			break
		}
		im.importMountContents(ctx, m, spawn)
	}
	wg.Wait()
	return ctx.Err()
}

// startProgress writes a line with counts and rate every ProgressEvery; the returned function
// stops it and writes the last line.
func (im *importer) startProgress() func() {
	if im.opt.Progress == nil {
		return func() {}
	}
	start := time.Now()
	line := func() {
		done, total := im.done.Load(), im.total.Load()
		el := time.Since(start).Seconds()
		rate := 0.0
		if el > 0 {
			rate = float64(done) / el
		}
		fmt.Fprintf(im.opt.Progress, "import: %d/%d items, %d KV versions, %.0f items/s, %s\n",
			done, total, im.versions.Load(), rate, time.Since(start).Round(time.Second))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(im.opt.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				line()
			}
		}
	}()
	return func() {
		close(stop)
		wg.Wait()
		line()
	}
}

// --- paths and globs ---

func compileGlobs(globs []string) ([]*regexp.Regexp, error) {
	var out []*regexp.Regexp
	for _, g := range globs {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		var b strings.Builder
		b.WriteString("^")
		for _, r := range g {
			switch r {
			case '*':
				b.WriteString(".*")
			case '?':
				b.WriteString(".")
			default:
				b.WriteString(regexp.QuoteMeta(string(r)))
			}
		}
		b.WriteString("$")
		re, err := regexp.Compile(b.String())
		if err != nil {
			return nil, fmt.Errorf("path glob %q: %w", g, err)
		}
		out = append(out, re)
	}
	return out, nil
}

// wanted says whether an item path is imported.
func (im *importer) wanted(p string) bool {
	for _, re := range im.exclude {
		if re.MatchString(p) {
			return false
		}
	}
	if len(im.include) == 0 {
		return true
	}
	for _, re := range im.include {
		if re.MatchString(p) {
			return true
		}
	}
	return false
}

// mountWanted says whether anything under a mount may be imported: an Include could match a
// path under it, and no Exclude covers all of it.
func (im *importer) mountWanted(mount string) bool {
	for _, re := range im.exclude {
		if re.MatchString(mount) && re.MatchString(mount+"\x00") {
			return false // "secret/*" excludes the whole mount
		}
	}
	if len(im.include) == 0 {
		return true
	}
	for _, re := range im.include {
		lit := literalPrefix(re.String())
		if strings.HasPrefix(lit, mount) || strings.HasPrefix(mount, lit) {
			return true
		}
	}
	return false
}

// literalPrefix is the part of a compiled glob before its first wildcard.
func literalPrefix(re string) string {
	re = strings.TrimPrefix(re, "^")
	var b strings.Builder
	for i := 0; i < len(re); i++ {
		switch c := re[i]; c {
		case '\\':
			if i+1 < len(re) {
				b.WriteByte(re[i+1])
				i++
			}
		case '.', '$':
			return b.String()
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// --- API helpers ---

// status is the HTTP status of an API error, 0 for any other error.
func status(err error) int {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	return 0
}

// reason turns an error into a report reason: the status and the server's messages (which
// never hold a value: servers do not echo secrets), without the URL.
func reason(what string, err error) string {
	var re *api.ResponseError
	if errors.As(err, &re) {
		msg := strings.Join(re.Errors, "; ")
		if re.StatusCode == http.StatusForbidden {
			msg = "permission denied"
		}
		return fmt.Sprintf("%s: HTTP %d: %s", what, re.StatusCode, msg)
	}
	if errors.Is(err, context.Canceled) {
		return what + ": cancelled"
	}
	return fmt.Sprintf("%s: %v", what, err)
}

func list(ctx context.Context, c *api.Client, path string) ([]string, error) {
	s, err := c.Logical().ListWithContext(ctx, path)
	if err != nil || s == nil || s.Data == nil {
		if status(err) == http.StatusNotFound {
			err = nil
		}
		return nil, err
	}
	raw, _ := s.Data["keys"].([]any)
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		if ks, ok := k.(string); ok {
			out = append(out, ks)
		}
	}
	return out, nil
}

func read(ctx context.Context, c *api.Client, path string) (map[string]any, error) {
	s, err := c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		if status(err) == http.StatusNotFound {
			return nil, nil
		}
		return nil, err
	}
	if s == nil {
		return nil, nil
	}
	return s.Data, nil
}

func write(ctx context.Context, c *api.Client, path string, data map[string]any) (*api.Secret, error) {
	return c.Logical().WriteWithContext(ctx, path, data)
}

// writtenStatus is the status of an item just written: updated when something was there.
func writtenStatus(existed bool) Status {
	if existed {
		return Updated
	}
	return Imported
}
