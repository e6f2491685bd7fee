package commands

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/host"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/ledger-secrets/ledger/engines"
)

// hostInfo is sys/host-info's data. Vault fills it from gopsutil and serialises gopsutil's own
// structs, so their field names (camelCase inside, snake_case outside) are the contract; using
// the same library keeps them identical.
type hostInfo struct {
	Timestamp time.Time              `json:"timestamp"`
	CPU       []cpu.InfoStat         `json:"cpu"`
	CPUTimes  []cpu.TimesStat        `json:"cpu_times"`
	Disk      []*disk.UsageStat      `json:"disk"`
	Host      *host.InfoStat         `json:"host"`
	Memory    *mem.VirtualMemoryStat `json:"memory"`
}

// hostInfo serves sys/host-info. A part that cannot be collected (a container without /proc
// access, say) is left out with a warning, as Vault does, rather than failing the whole answer.
func (s *sysBackend) hostInfo(ctx context.Context, req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	info := hostInfo{Timestamp: time.Now().UTC()}
	var warnings []string
	warn := func(what string, err error) { warnings = append(warnings, fmt.Sprintf("%s: %v", what, err)) }
	var err error
	if info.CPU, err = cpu.InfoWithContext(ctx); err != nil {
		warn("cpu", err)
	}
	if info.CPUTimes, err = cpu.TimesWithContext(ctx, false); err != nil {
		warn("cpu_times", err)
	}
	if info.Host, err = host.InfoWithContext(ctx); err != nil {
		warn("host", err)
	}
	if info.Memory, err = mem.VirtualMemoryWithContext(ctx); err != nil {
		warn("memory", err)
	}
	parts, err := disk.PartitionsWithContext(ctx, false)
	if err != nil {
		warn("disk", err)
	}
	for _, p := range parts {
		u, err := disk.UsageWithContext(ctx, p.Mountpoint)
		if err != nil {
			warn("disk "+p.Mountpoint, err)
			continue
		}
		info.Disk = append(info.Disk, u)
	}
	b, err := json.Marshal(info)
	if err != nil {
		return nil, fmt.Errorf("host info: %w", err)
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("host info: %w", err)
	}
	return &engines.Response{Data: data, Warnings: warnings}, nil
}

// versionHistory serves LIST sys/version-history. Ledger knows one installed version, the one
// running, installed when the cluster was initialised.
func (s *sysBackend) versionHistory(req *engines.Request) (*engines.Response, error) {
	if req.Op != engines.OpList && req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	installed := s.c.sealView.State().InitTime.UTC().Format(time.RFC3339)
	return &engines.Response{Data: map[string]any{
		"keys": []string{Version},
		"key_info": map[string]any{Version: map[string]any{
			"build_date": BuildDate, "previous_version": nil, "timestamp_installed": installed,
		}},
	}}, nil
}

// builtinPlugins is the catalog: what this build can mount, by Vault's plugin types.
var builtinPlugins = map[string][]string{
	"auth":     {"approle", "userpass"},
	"database": {"mysql-database-plugin", "postgresql-database-plugin"},
	"secret":   {"database", "kv", "transit"},
}

// builtinVersion is how Vault versions its built-in plugins.
func builtinVersion() string {
	v, _, _ := strings.Cut(Version, "+")
	return "v" + v + "+builtin"
}

// pluginCatalog serves sys/plugins/catalog (read-only: Ledger runs no external plugins).
func (s *sysBackend) pluginCatalog(req *engines.Request, rest string) (*engines.Response, error) {
	if isWrite(req.Op) || req.Op == engines.OpDelete {
		return nil, engines.BadRequest("the plugin catalog is read-only: Ledger serves only its built-in engines and runs no external plugins")
	}
	types := make([]string, 0, len(builtinPlugins))
	for t := range builtinPlugins {
		types = append(types, t)
	}
	sort.Strings(types)
	if rest == "" {
		data := map[string]any{}
		var detailed []map[string]any
		for _, t := range types {
			data[t] = builtinPlugins[t]
			for _, n := range builtinPlugins[t] {
				detailed = append(detailed, map[string]any{"type": t, "name": n, "version": builtinVersion(),
					"builtin": true, "deprecation_status": "supported"})
			}
		}
		data["detailed"] = detailed
		return &engines.Response{Data: data}, nil
	}
	typ, name, _ := strings.Cut(rest, "/")
	names, ok := builtinPlugins[typ]
	if !ok {
		return nil, engines.BadRequest("%q is not a supported plugin type: use auth, database or secret", typ)
	}
	if name == "" {
		return &engines.Response{Data: map[string]any{"keys": names}}, nil
	}
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	for _, n := range names {
		if n == name {
			return &engines.Response{Data: map[string]any{
				"name": n, "args": []string{}, "command": "", "sha256": "", "builtin": true,
				"version": builtinVersion(), "deprecation_status": "supported",
			}}, nil
		}
	}
	return nil, engines.Errorf(engines.ErrNotFound, "no %s plugin %q in the catalog", typ, name)
}
