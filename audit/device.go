package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrInvalidDevice wraps every reason an audit device cannot be enabled; the message says what
// to change and is safe to show to the client.
var ErrInvalidDevice = errors.New("invalid audit device")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidDevice)
}

// Device is an enabled audit device, the payload of DeviceEnabled.
type Device struct {
	Path        string            `json:"path"` // with a trailing slash: "file/"
	Type        string            `json:"type"` // file, syslog, socket, http
	Description string            `json:"description"`
	Options     map[string]string `json:"options"`
	Local       bool              `json:"local"`
	// UUID names the device's durable consumers; a device enabled again at the same path is a
	// new device with new consumers.
	UUID string `json:"uuid"`
	// AuditStart is the first LEDGER_AUDIT sequence the device emits (1 with backfill).
	AuditStart uint64 `json:"audit_start"`
	// LogStart is the first log sequence the device emits: the batch that enabled it (so it
	// records its own enabling), or 1 with backfill. Set by the view from the event's position.
	LogStart  uint64    `json:"log_start"`
	EnabledAt time.Time `json:"enabled_at"`
}

// DisabledPayload names the device removed.
type DisabledPayload struct {
	Path string `json:"path"`
	UUID string `json:"uuid"`
}

// ConsumerName is the durable consumer name of the device, the same on both streams.
func (d Device) ConsumerName() string { return consumerPrefix + strings.ReplaceAll(d.UUID, "-", "") }

const consumerPrefix = "AUDIT_"

// Settings are a device's options, parsed and checked.
type Settings struct {
	Format
	// Output is the line format: OutputJSON (Vault's, the default), OutputOCSF, OutputECS or
	// OutputCEF.
	Output   string
	Prefix   string
	Backfill bool

	// file
	FilePath string
	FileMode os.FileMode // 0: leave the mode alone

	// syslog
	Facility, Tag                string
	SyslogNetwork, SyslogAddress string

	// socket
	Address, SocketType string
	WriteTimeout        time.Duration

	// http
	URL        string
	Headers    map[string]string
	HTTPFormat string // ndjson or splunk_hec
	BatchSize  int
	Timeout    time.Duration

	// nats (URL empty: the node's own server), rabbitmq (URL, Exchange, RoutingKey), mqtt
	Subject              string
	NATSURL              string
	NATSJetStream        bool
	Exchange, RoutingKey string
	Broker, Topic        string
	ClientID             string
	Username, Password   string
}

// Types of audit device this build can run.
var deviceTypes = map[string][]string{
	"file":     {"file_path", "path", "mode"},
	"syslog":   {"facility", "tag", "address", "network"},
	"socket":   {"address", "socket_type", "write_timeout"},
	"http":     {"url", "headers", "http_format", "batch_size", "timeout"},
	"nats":     {"subject", "url", "jetstream"},
	"rabbitmq": {"url", "exchange", "routing_key"},
	"mqtt":     {"broker", "topic", "client_id", "username", "password"},
}

var commonOptions = []string{"hmac_accessor", "log_raw", "audit_non_hmac_request_keys", "audit_non_hmac_response_keys",
	"backfill", "prefix", "format", "elide_list_responses", "fallback", "filter", "exclude"}

var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

// ParseSettings checks a device's type and options. Errors wrap ErrInvalidDevice.
func ParseSettings(typ string, opts map[string]string) (Settings, error) {
	known, ok := deviceTypes[typ]
	if !ok {
		return Settings{}, invalid("unknown audit device type %q: use file, syslog, socket, http, nats, rabbitmq or mqtt", typ)
	}
	allowed := map[string]bool{}
	for _, k := range append(append([]string(nil), known...), commonOptions...) {
		allowed[k] = true
	}
	var unknown []string
	for k := range opts {
		if !allowed[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		all := append(append([]string(nil), known...), commonOptions[:6]...)
		return Settings{}, invalid("unknown option(s) for a %s audit device: %s (known: %s)", typ, strings.Join(unknown, ", "), strings.Join(all, ", "))
	}
	s := Settings{Format: DefaultFormat}
	var err error
	if s.HMACAccessor, err = boolOpt(opts, "hmac_accessor", true); err != nil {
		return Settings{}, err
	}
	logRaw, err := boolOpt(opts, "log_raw", false)
	if err != nil {
		return Settings{}, err
	}
	if logRaw {
		// The records are made once, at request time, from what the log may hold: tokens and
		// secret values only as HMACs. There is nothing raw left to log, and pretending otherwise
		// (logging a subset raw) would mislead whoever relies on it.
		return Settings{}, invalid("log_raw=true is not supported: Ledger stores audit records with every token and secret value already HMACed, so no device can log them in the clear; list specific data keys in audit_non_hmac_request_keys / audit_non_hmac_response_keys instead")
	}
	if v, err := boolOpt(opts, "elide_list_responses", false); err != nil || v {
		if err != nil {
			return Settings{}, err
		}
		return Settings{}, invalid("elide_list_responses=true is not supported")
	}
	for _, k := range []string{"fallback", "filter", "exclude"} {
		if opts[k] != "" && opts[k] != "false" {
			return Settings{}, invalid("option %s is not supported by Ledger's audit devices", k)
		}
	}
	switch f := opts["format"]; f {
	case "", OutputJSON:
		s.Output = OutputJSON
	case OutputOCSF, OutputECS, OutputCEF:
		s.Output = f
	case "jsonx":
		return Settings{}, invalid("format \"jsonx\" (Vault's XML) is not supported: use json, ocsf, ecs or cef")
	default:
		return Settings{}, invalid("format %q is not supported: use json (Vault's audit JSON), ocsf (OCSF %s), ecs (Elastic Common Schema %s) or cef (ArcSight CEF)", f, OCSFVersion, ECSVersion)
	}
	s.NonHMACRequestKeys = listOpt(opts["audit_non_hmac_request_keys"])
	s.NonHMACResponseKeys = listOpt(opts["audit_non_hmac_response_keys"])
	if s.Backfill, err = boolOpt(opts, "backfill", false); err != nil {
		return Settings{}, err
	}
	s.Prefix = opts["prefix"]
	switch typ {
	case "file":
		s.FilePath = opts["file_path"]
		if s.FilePath == "" {
			s.FilePath = opts["path"]
		}
		if s.FilePath == "" {
			return Settings{}, invalid("file_path is required: the file the device appends JSON lines to (or \"stdout\", \"discard\")")
		}
		s.FileMode = 0o600
		if m := opts["mode"]; m != "" {
			v, err := strconv.ParseUint(m, 8, 32)
			if err != nil || v > 0o777 {
				return Settings{}, invalid("mode %q: expected an octal file mode such as 0600", m)
			}
			s.FileMode = os.FileMode(v)
		}
	case "syslog":
		s.Facility, s.Tag = opts["facility"], opts["tag"]
		if s.Facility == "" {
			s.Facility = "AUTH"
		}
		if s.Tag == "" {
			s.Tag = "vault"
		}
		if _, ok := facilities[strings.ToUpper(s.Facility)]; !ok {
			return Settings{}, invalid("facility %q: expected one of KERN, USER, MAIL, DAEMON, AUTH, SYSLOG, LPR, NEWS, UUCP, CRON, AUTHPRIV, FTP, LOCAL0…LOCAL7", s.Facility)
		}
		s.SyslogNetwork, s.SyslogAddress = opts["network"], opts["address"]
		if s.SyslogAddress != "" && s.SyslogNetwork == "" {
			s.SyslogNetwork = "udp"
		}
		if s.SyslogAddress == "" && s.SyslogNetwork != "" {
			return Settings{}, invalid("network %q needs an address", s.SyslogNetwork)
		}
	case "socket":
		s.Address, s.SocketType = opts["address"], opts["socket_type"]
		if s.Address == "" {
			return Settings{}, invalid("address is required: host:port, or a path for socket_type=unix")
		}
		if s.SocketType == "" {
			s.SocketType = "tcp"
		}
		if s.SocketType != "tcp" && s.SocketType != "udp" && s.SocketType != "unix" {
			return Settings{}, invalid("socket_type %q: expected tcp, udp or unix", s.SocketType)
		}
		if s.WriteTimeout, err = durationOpt(opts, "write_timeout", 2*time.Second); err != nil {
			return Settings{}, err
		}
	case "http":
		s.URL = opts["url"]
		u, err := url.Parse(s.URL)
		if s.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return Settings{}, invalid("url %q: expected the http:// or https:// URL records are POSTed to (e.g. a Splunk HEC endpoint or a webhook)", s.URL)
		}
		if h := opts["headers"]; h != "" {
			if err := json.Unmarshal([]byte(h), &s.Headers); err != nil {
				return Settings{}, invalid("headers: expected a JSON object of header names to string values, e.g. {\"Authorization\":\"Splunk <token>\"}")
			}
			for k := range s.Headers {
				if !headerNameRE.MatchString(k) {
					return Settings{}, invalid("headers: %q is not a valid header name", k)
				}
			}
		}
		s.HTTPFormat = opts["http_format"]
		if s.HTTPFormat == "" {
			s.HTTPFormat = "ndjson"
		}
		if s.HTTPFormat != "ndjson" && s.HTTPFormat != "splunk_hec" {
			return Settings{}, invalid("http_format %q: expected ndjson (one JSON entry per line) or splunk_hec", s.HTTPFormat)
		}
		s.BatchSize = 100
		if b := opts["batch_size"]; b != "" {
			n, err := strconv.Atoi(b)
			if err != nil || n < 1 || n > 10000 {
				return Settings{}, invalid("batch_size %q: expected an integer from 1 to 10000", b)
			}
			s.BatchSize = n
		}
		if s.Timeout, err = durationOpt(opts, "timeout", 10*time.Second); err != nil {
			return Settings{}, err
		}
	case "nats":
		s.Subject, s.NATSURL = opts["subject"], opts["url"]
		if !natsSubjectRE.MatchString(s.Subject) {
			return Settings{}, invalid("subject %q: expected a NATS subject to publish to, such as ledger.audit (tokens of letters, digits, '-' and '_' separated by '.', no wildcards)", s.Subject)
		}
		if s.NATSURL != "" && !schemeIn(s.NATSURL, "nats", "tls") {
			return Settings{}, invalid("url %q: expected nats://host:port (or tls://), or no url to publish on the node's own NATS server", redactURL(s.NATSURL))
		}
		if s.NATSJetStream, err = boolOpt(opts, "jetstream", false); err != nil {
			return Settings{}, err
		}
	case "rabbitmq":
		s.URL, s.Exchange, s.RoutingKey = opts["url"], opts["exchange"], opts["routing_key"]
		if !schemeIn(s.URL, "amqp", "amqps") {
			return Settings{}, invalid("url %q: expected amqp://user:password@host:5672/vhost (or amqps://)", redactURL(s.URL))
		}
		if s.RoutingKey == "" && s.Exchange == "" {
			return Settings{}, invalid("routing_key is required with the default exchange: it names the queue the records go to")
		}
		if len(s.Exchange) > 255 || len(s.RoutingKey) > 255 {
			return Settings{}, invalid("exchange and routing_key are at most 255 bytes")
		}
	case "mqtt":
		s.Broker, s.Topic, s.ClientID = opts["broker"], opts["topic"], opts["client_id"]
		s.Username, s.Password = opts["username"], opts["password"]
		if !schemeIn(s.Broker, "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss") {
			return Settings{}, invalid("broker %q: expected tcp://host:1883 (or ssl://, ws://)", redactURL(s.Broker))
		}
		if s.Topic == "" || strings.ContainsAny(s.Topic, "+#\x00") || len(s.Topic) > 65535 {
			return Settings{}, invalid("topic %q: expected an MQTT topic to publish to, without the wildcards + and #", s.Topic)
		}
		if s.ClientID == "" {
			s.ClientID = "ledger-audit"
		}
		if len(s.ClientID) > 128 {
			return Settings{}, invalid("client_id is at most 128 characters")
		}
	}
	return s, nil
}

var natsSubjectRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

func boolOpt(opts map[string]string, k string, def bool) (bool, error) {
	v, ok := opts[k]
	if !ok || v == "" {
		return def, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid("option %s=%q: expected true or false", k, v)
	}
	return b, nil
}

func durationOpt(opts map[string]string, k string, def time.Duration) (time.Duration, error) {
	v, ok := opts[k]
	if !ok || v == "" {
		return def, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, invalid("option %s=%q: expected a duration such as \"5s\"", k, v)
	}
	return d, nil
}

func listOpt(v string) map[string]bool {
	var m map[string]bool
	for _, k := range strings.Split(v, ",") {
		if k = strings.TrimSpace(k); k != "" {
			if m == nil {
				m = map[string]bool{}
			}
			m[k] = true
		}
	}
	return m
}

// Redacted returns the options as sys/audit shows them: header values (which hold SIEM
// credentials) are replaced.
func (d Device) Redacted() map[string]string {
	out := make(map[string]string, len(d.Options))
	for k, v := range d.Options {
		out[k] = v
	}
	if p, ok := out["password"]; ok && p != "" {
		out["password"] = "<redacted>"
	}
	for _, k := range []string{"url", "broker"} {
		if u, ok := out[k]; ok {
			out[k] = redactPassword(u)
		}
	}
	if h, ok := out["headers"]; ok {
		var m map[string]string
		if json.Unmarshal([]byte(h), &m) == nil {
			for k := range m {
				m[k] = "<redacted>"
			}
			b, _ := json.Marshal(m)
			out["headers"] = string(b)
		}
	}
	return out
}

// redactPassword hides the password of a URL's user info (amqp://guest:guest@host/).
func redactPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "redacted")
	}
	return u.String()
}
