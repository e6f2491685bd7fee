// Package config owns the agent's configuration file: Vault Agent's HCL (or
// its JSON form), parsed as Vault Agent parses it (HCL 1, so `perms = 0600`
// is octal and `config = {…}` and `config {…}` mean the same), validated,
// with defaults applied.
//
// Unlike the server's config, a key the agent does not know is an error with
// its file:line: an agent that silently ignored `exec` or a sink would leave
// an application without its secrets and nobody told.
package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"
)

// ErrInvalid is wrapped by every error Parse and Load return for a file that
// was read but whose content is wrong.
var ErrInvalid = errors.New("invalid agent config")

// Defaults, as in Vault Agent.
const (
	DefaultNumRetries        = 12
	DefaultSinkMode          = os.FileMode(0o640)
	DefaultTemplatePerms     = os.FileMode(0o644)
	DefaultMinBackoff        = time.Second
	DefaultMaxBackoff        = 5 * time.Minute
	DefaultStaticInterval    = 5 * time.Minute
	DefaultCommandTimeout    = 30 * time.Second
	DefaultRenewalThreshold  = 2.0 / 3.0
	DefaultKubernetesJWTPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"
)

// Config is a parsed and validated agent configuration.
type Config struct {
	Vault          Vault
	AutoAuth       *AutoAuth // nil when there is no auto_auth block
	Templates      []*Template
	TemplateConfig TemplateConfig
	EnvTemplates   []*EnvTemplate
	Exec           *Exec
	APIProxy       *APIProxy
	Listeners      []Listener
	Cache          *Cache
	PidFile        string
	ExitAfterAuth  bool
	LogLevel       string
	LogFile        string

	// Warnings are "file:line: message" strings for settings that are
	// accepted but worth a second look (a sink in a world-readable directory).
	Warnings []string
}

// Vault is the vault block: where the server is and how to reach it.
type Vault struct {
	Address       string // empty: VAULT_ADDR or the CLI's default, decided by the caller
	CACert        string
	CAPath        string
	ClientCert    string
	ClientKey     string
	TLSSkipVerify bool
	TLSServerName string
	Namespace     string
	NumRetries    int // -1 disables retries
}

// AutoAuth is the auto_auth block.
type AutoAuth struct {
	Method Method
	Sinks  []Sink
}

// Method is auto_auth's method block.
type Method struct {
	Type       string // approle, token_file, userpass, kubernetes, jwt
	MountPath  string // "auth/<type>" unless set
	Namespace  string
	MinBackoff time.Duration
	MaxBackoff time.Duration
	ExitOnErr  bool

	// Method-specific settings, already validated.
	RoleIDFile           string // approle
	SecretIDFile         string // approle; empty when the role does not bind a secret ID
	RemoveSecretIDFile   bool   // approle, default true as in Vault
	TokenFile            string // token_file
	Username             string // userpass
	Password             string // userpass (inline)
	PasswordFile         string // userpass
	Role                 string // kubernetes, jwt
	JWTPath              string // kubernetes token_path, jwt path
	RemoveJWTAfterRead   bool   // jwt, default true as in Vault
	RemoveJWTFollowLinks bool   // jwt

	Line int
}

// Sink is one auto_auth sink "file" block.
type Sink struct {
	Type string // always "file"
	Path string
	Mode os.FileMode
	Line int
}

// Template is one template block, in consul-template's terms.
type Template struct {
	Source            string
	Contents          string
	Destination       string
	Perms             os.FileMode // 0: keep an existing file's mode, else DefaultTemplatePerms
	Command           []string    // run after each change; a single string runs under sh -c
	CommandTimeout    time.Duration
	ErrorOnMissingKey bool
	LeftDelim         string
	RightDelim        string
	Backup            bool
	CreateDestDirs    bool
	WaitMin, WaitMax  time.Duration
	Line              int
}

// TemplateConfig is the template_config block.
type TemplateConfig struct {
	ExitOnRetryFailure    bool
	StaticSecretRenderInt time.Duration
	MaxConnectionsPerHost int
	LeaseRenewalThreshold float64
}

// EnvTemplate is one env_template "NAME" block: a template whose rendering
// becomes the environment variable NAME of the exec child.
type EnvTemplate struct {
	Name              string
	Contents          string
	ErrorOnMissingKey bool
	LeftDelim         string
	RightDelim        string
	Line              int
}

// Exec is the exec block: the child process the agent supervises.
type Exec struct {
	Command                []string
	RestartOnSecretChanges string // "always" or "never"
	RestartStopSignal      syscall.Signal
	ChildStdout            string
	ChildStderr            string
}

// APIProxy is the api_proxy block.
type APIProxy struct {
	UseAutoAuthToken bool
	ForceAutoAuth    bool // use_auto_auth_token = "force": replace a token the client sent
}

// Listener is one listener "tcp" block of the agent.
type Listener struct {
	Address              string
	TLSDisable           bool
	TLSCertFile          string
	TLSKeyFile           string
	RequireRequestHeader bool
	Line                 int
}

// Cache is the cache block.
type Cache struct{}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w (pass the file with -config=agent.hcl)", err)
	}
	return Parse(src, path)
}

// Parse parses src as an agent config named filename (used in positions).
// Every problem found is reported, joined into one error wrapping ErrInvalid.
func Parse(src []byte, filename string) (*Config, error) {
	d := &decoder{file: filename}
	cfg := d.decodeFile(src)
	if err := d.err(); err != nil {
		return nil, err
	}
	cfg.Warnings = d.warningStrings()
	return cfg, nil
}

// LoginPath is the method's login endpoint, relative to /v1/.
func (m Method) LoginPath() string {
	mount := strings.Trim(m.MountPath, "/")
	return mount + "/login"
}
