package commands

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/ledger-secrets/ledger/engines"
)

// pprofPath answers sys/pprof/* as Vault does (sudo; see Sudo): the Go runtime's profiles,
// written by runtime/pprof directly rather than through net/http/pprof, which would also
// register itself on http.DefaultServeMux.
//
//	sys/pprof/                 the list of profiles
//	sys/pprof/cmdline          the command line, NUL-separated
//	sys/pprof/profile          CPU profile (?seconds=, default 30, at most 300)
//	sys/pprof/trace            execution trace (?seconds=, default 1, at most 60)
//	sys/pprof/<name>           goroutine, heap, allocs, block, mutex, threadcreate (?debug=)
func (s *sysBackend) pprofPath(ctx context.Context, req *engines.Request, name string) (*engines.Response, error) {
	if req.Op != engines.OpRead {
		return nil, engines.ErrUnsupported
	}
	raw := func(b []byte, ctype string) *engines.Response {
		return &engines.Response{Data: map[string]any{RawBody: b, RawContentType: ctype, RawStatusCode: 200}}
	}
	intParam := func(key string, def, limit int) (int, error) {
		v, ok := req.Data[key].(string)
		if !ok || v == "" {
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > limit {
			return 0, engines.BadRequest("%s=%q: want a whole number from 0 to %d", key, v, limit)
		}
		return n, nil
	}
	var buf bytes.Buffer
	switch name {
	case "":
		fmt.Fprintln(&buf, "Profiles under sys/pprof/: cmdline, profile?seconds=N, trace?seconds=N")
		for _, p := range pprof.Profiles() {
			fmt.Fprintf(&buf, "%s (%d)\n", p.Name(), p.Count())
		}
		return raw(buf.Bytes(), "text/plain; charset=utf-8"), nil
	case "cmdline":
		return raw([]byte(strings.Join(os.Args, "\x00")), "text/plain; charset=utf-8"), nil
	case "profile", "trace":
		def, limit := 30, 300
		if name == "trace" {
			def, limit = 1, 60
		}
		secs, err := intParam("seconds", def, limit)
		if err != nil {
			return nil, err
		}
		start, stop := pprof.StartCPUProfile, pprof.StopCPUProfile
		if name == "trace" {
			start, stop = trace.Start, trace.Stop
		}
		if err := start(&buf); err != nil {
			return nil, engines.BadRequest("%s: %v (another profile is running?)", name, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(secs) * time.Second):
		}
		stop()
		return raw(buf.Bytes(), "application/octet-stream"), nil
	}
	p := pprof.Lookup(name)
	if p == nil {
		return nil, engines.Errorf(engines.ErrNotFound, "unknown profile %q; sys/pprof/ lists them", name)
	}
	debug, err := intParam("debug", 0, 2)
	if err != nil {
		return nil, err
	}
	if err := p.WriteTo(&buf, debug); err != nil {
		return nil, fmt.Errorf("profile %s: %w", name, err)
	}
	ctype := "application/octet-stream"
	if debug > 0 {
		ctype = "text/plain; charset=utf-8"
	}
	return raw(buf.Bytes(), ctype), nil
}
