package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// DefaultJetStreamCluster is the cluster name when the cluster block leaves it out.
const DefaultJetStreamCluster = "ledger"

// nodeIDPattern is what a NATS server name and a KV key both accept, and what reads well in
// `operator raft list-peers`.
var nodeIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

func validNodeID(s string) error {
	if !nodeIDPattern.MatchString(s) {
		return fmt.Errorf("must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// ValidNodeID reports whether s can name a node (used for the hostname default).
func ValidNodeID(s string) error { return validNodeID(s) }

// attrAlias returns the attribute set under name or its older alias, reporting both set.
func (d *decoder) attrAlias(c *hcl.BodyContent, name, alias string) (*hcl.Attribute, bool) {
	a, ok := c.Attributes[name]
	b, okAlias := c.Attributes[alias]
	switch {
	case ok && okAlias:
		d.errorf(b.Range, "%s and %s are the same setting; keep only %s", alias, name, name)
		return a, true
	case okAlias:
		return b, true
	}
	return a, ok
}

func (d *decoder) decodeStorage(b *hcl.Block) Storage {
	s := Storage{Type: b.Labels[0], Replicas: DefaultStreamReplicas}
	if s.Type != "jetstream" {
		d.errorf(b.DefRange, `storage type %q is not supported; only "jetstream" is`, s.Type)
		return s
	}
	where := fmt.Sprintf("storage %q", s.Type)
	c := d.content(b.Body, where, []string{"path", "url", "replicas", "stream_replicas",
		"credentials_file", "creds_file", "nkey_seed_file", "tls_ca_file", "tls_cert_file", "tls_key_file"},
		[]hcl.BlockHeaderSchema{{Type: "cluster"}})

	path, hasPath := c.Attributes["path"]
	u, hasURL := c.Attributes["url"]
	switch {
	case hasPath && hasURL:
		later := path
		if u.Range.Start.Line > path.Range.Start.Line {
			later = u
		}
		d.errorf(later.Range, "%s sets both path and url; use path for embedded JetStream or url for an external NATS server", where)
	case hasPath:
		s.Path, _ = d.nonEmptyStr(path)
	case hasURL:
		if v, ok := d.nonEmptyStr(u); ok {
			if err := validNATSURLs(v); err != nil {
				d.errorf(u.Range, "url %q: %v", v, err)
			} else {
				s.URL = v
			}
		}
	default:
		d.errorf(b.DefRange, "%s needs path (embedded JetStream data directory) or url (external NATS server)", where)
	}

	// Credentials and TLS apply to the connection to an external server only.
	files := []struct {
		name, alias string
		dst         *string
	}{
		{"credentials_file", "creds_file", &s.CredsFile},
		{"nkey_seed_file", "", &s.NKeySeedFile},
		{"tls_ca_file", "", &s.TLSCAFile},
		{"tls_cert_file", "", &s.TLSCertFile},
		{"tls_key_file", "", &s.TLSKeyFile},
	}
	for _, f := range files {
		a, ok := d.attrAlias(c, f.name, f.alias)
		if !ok {
			continue
		}
		if !hasURL {
			// Silently ignoring credentials would hide a config that
			// the operator believes is authenticating.
			d.errorf(a.Range, "%s applies only to an external NATS server (url), not to embedded JetStream (path)", a.Name)
			continue
		}
		*f.dst, _ = d.nonEmptyStr(a)
	}
	if hasURL {
		if s.CredsFile != "" && s.NKeySeedFile != "" {
			d.errorf(c.Attributes["nkey_seed_file"].Range, "%s sets both a credentials file and nkey_seed_file; NATS authenticates with one of them", where)
		}
		if (s.TLSCertFile == "") != (s.TLSKeyFile == "") {
			d.errorf(b.DefRange, "%s needs tls_cert_file and tls_key_file together (a client certificate and its key)", where)
		}
	}

	replicasLine := 0
	if a, ok := d.attrAlias(c, "replicas", "stream_replicas"); ok {
		replicasLine = a.Range.Start.Line
		if n, ok := d.integer(a); ok {
			if n < 1 || n > MaxStreamReplicas {
				d.errorf(a.Range, "%s must be between 1 and %d, got %d", a.Name, MaxStreamReplicas, n)
			} else {
				s.Replicas = int(n)
			}
		}
	}

	var clusters []*hcl.Block
	for _, cb := range c.Blocks {
		clusters = append(clusters, cb)
	}
	for _, cb := range clusters[min(1, len(clusters)):] {
		d.errorf(cb.DefRange, "only one cluster block is allowed in %s; the first is at line %d", where, clusters[0].DefRange.Start.Line)
	}
	if len(clusters) > 0 {
		cb := clusters[0]
		switch {
		case hasURL:
			d.errorf(cb.DefRange, "%s has a cluster block and url: the cluster block makes the embedded server (path) join a cluster; an external NATS cluster (url) is clustered by its own config", where)
		case !hasPath:
			d.errorf(cb.DefRange, "%s has a cluster block but no path: the embedded server that joins the cluster needs a data directory", where)
		default:
			s.Cluster = d.decodeCluster(cb, where)
		}
	}
	if hasPath && len(clusters) == 0 && s.Replicas > 1 {
		d.errorf(hcl.Range{Start: hcl.Pos{Line: replicasLine}}, "replicas = %d needs a cluster block in %s: a single embedded server keeps one copy (add cluster { listen = \"…\" routes = [\"nats://…\"] }, or set replicas = 1)", s.Replicas, where)
	}
	return s
}

func (d *decoder) decodeCluster(b *hcl.Block, storage string) *StorageCluster {
	where := storage + " cluster"
	c := d.content(b.Body, where, []string{"name", "listen", "routes", "advertise"}, nil)
	cl := &StorageCluster{Name: DefaultJetStreamCluster}
	if a, ok := c.Attributes["name"]; ok {
		if s, ok := d.nonEmptyStr(a); ok {
			if strings.ContainsAny(s, " \t\r\n.*>") {
				d.errorf(a.Range, "cluster name %q must not contain spaces, '.', '*' or '>'", s)
			} else {
				cl.Name = s
			}
		}
	}
	if a, ok := c.Attributes["listen"]; ok {
		if s, ok := d.nonEmptyStr(a); ok {
			if err := validHostPort(s); err != nil {
				d.errorf(a.Range, "listen %q must be host:port: %v", s, err)
			} else {
				cl.Listen = s
			}
		}
	} else {
		d.errorf(b.DefRange, `%s needs listen, the host:port other members route to (for example listen = "127.0.0.1:6221")`, where)
	}
	if a, ok := c.Attributes["advertise"]; ok {
		// An empty advertise means "use listen", as the brief's template writes it.
		if s, ok := d.str(a); ok && s != "" {
			if err := validHostPort(s); err != nil {
				d.errorf(a.Range, "advertise %q must be host:port: %v", s, err)
			} else {
				cl.Advertise = s
			}
		}
	}
	if a, ok := c.Attributes["routes"]; ok {
		cl.Routes = d.routes(a)
	} else {
		d.errorf(b.DefRange, `%s needs routes, the nats:// URL of every member (for example routes = ["nats://127.0.0.1:6221", "nats://127.0.0.1:6222"])`, where)
	}
	return cl
}

func (d *decoder) routes(a *hcl.Attribute) []string {
	v, ok := d.value(a)
	if !ok {
		return nil
	}
	if !v.Type().IsTupleType() && !v.Type().IsListType() {
		d.errorf(a.Range, "routes must be a list of nats:// URLs, got %s", v.Type().FriendlyName())
		return nil
	}
	var out []string
	seen := map[string]bool{}
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		if e.IsNull() || e.Type() != cty.String {
			d.errorf(a.Range, "routes must be a list of nats:// URLs; an element is %s", e.Type().FriendlyName())
			return nil
		}
		r := e.AsString()
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "nats" && u.Scheme != "nats-route" && u.Scheme != "tls") || validHostPort(u.Host) != nil {
			d.errorf(a.Range, "route %q must be nats://host:port", r)
			return nil
		}
		if seen[r] {
			d.errorf(a.Range, "route %q is listed twice", r)
			return nil
		}
		seen[r] = true
		out = append(out, r)
	}
	if len(out) == 0 {
		d.errorf(a.Range, "routes must name at least one member")
	}
	return out
}

func validHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("no host")
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "0" {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// validNATSURLs checks a comma-separated list of NATS server URLs, as nats.Connect takes them.
func validNATSURLs(s string) error {
	for _, one := range strings.Split(s, ",") {
		one = strings.TrimSpace(one)
		u, err := url.Parse(one)
		if err != nil || u.Host == "" {
			return fmt.Errorf("each server must be a URL such as nats://host:4222, got %q", one)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("scheme %q is not nats, tls, ws or wss", u.Scheme)
		}
	}
	return nil
}
