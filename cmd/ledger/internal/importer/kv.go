package importer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// walkKV lists a KV tree (KV v2 through metadata/) and hands every secret to the pool. A
// directory the token may not list is reported and the rest of the tree is still imported.
func (im *importer) walkKV(ctx context.Context, m *mountInfo, dir string, spawn func(func())) {
	listPath := m.Path + dir
	if m.KV2 {
		listPath = m.Path + "metadata/" + dir
	}
	keys, err := list(ctx, im.src, listPath)
	if err != nil {
		if ctx.Err() == nil {
			im.add(Item{Kind: KindKVTree, Path: m.Path + dir, Status: Unreadable, Reason: reason("list", err)})
		}
		return
	}
	sort.Strings(keys)
	for _, k := range keys {
		if ctx.Err() != nil {
			return
		}
		rel := dir + k
		if strings.HasSuffix(k, "/") {
			if im.mountWanted(m.Path + rel) {
				im.walkKV(ctx, m, rel, spawn)
			}
			continue
		}
		if !im.wanted(m.Path + rel) {
			continue
		}
		if m.KV2 {
			spawn(func() { im.add(im.importKV2(ctx, m, rel)) })
		} else {
			spawn(func() { im.add(im.importKV1(ctx, m, rel)) })
		}
	}
}

// importKV1 copies one KV v1 value.
func (im *importer) importKV1(ctx context.Context, m *mountInfo, rel string) Item {
	it := Item{Kind: KindKV1, Path: m.Path + rel}
	val, err := read(ctx, im.src, m.Path+rel)
	if err != nil || val == nil {
		it.Status, it.Reason = Unreadable, "read: gone from the source while importing"
		if err != nil {
			it.Reason = reason("read", err)
		}
		return it
	}
	have, err := read(ctx, im.dst, m.Path+rel)
	if err != nil && !(im.opt.DryRun && status(err) == http.StatusNotFound) {
		if !im.opt.DryRun {
			it.Status, it.Reason = Failed, reason("read from Ledger", err)
			return it
		}
	}
	switch {
	case have != nil && sameValue(have, val):
		it.Status = Unchanged
		return it
	case have != nil && !im.opt.Overwrite:
		it.Status, it.Reason = Conflict, "Ledger holds another value here (-overwrite to replace it)"
		return it
	case im.opt.DryRun:
		it.Status = WouldImport
		return it
	}
	if _, err := write(ctx, im.dst, m.Path+rel, val); err != nil {
		it.Status, it.Reason = Failed, reason("write", err)
		return it
	}
	it.Status = writtenStatus(have != nil)
	return it
}

// kvMeta is a KV v2 secret's metadata, as both servers answer it.
type kvMeta struct {
	Current, Oldest    uint64
	MaxVersions        int64
	CASRequired        bool
	DeleteVersionAfter time.Duration
	Custom             map[string]any
	Versions           map[uint64]kvVersion
}

type kvVersion struct {
	Created   string // RFC 3339 as the server wrote it
	Deletion  string
	Destroyed bool
}

func (v kvVersion) deleted(now time.Time) bool {
	if v.Deletion == "" {
		return false
	}
	t, err := time.Parse(time.RFC3339Nano, v.Deletion)
	return err == nil && !t.After(now)
}

func sameTime(a, b string) bool {
	if a == b {
		return true
	}
	ta, e1 := time.Parse(time.RFC3339Nano, a)
	tb, e2 := time.Parse(time.RFC3339Nano, b)
	return e1 == nil && e2 == nil && ta.Equal(tb)
}

func num(v any) int64 {
	switch t := v.(type) {
	case json.Number:
		n, _ := t.Int64()
		return n
	case float64:
		return int64(t)
	case int:
		return int64(t)
	case string:
		n, _ := strconv.ParseInt(t, 10, 64)
		return n
	}
	return 0
}

func parseMeta(d map[string]any) *kvMeta {
	if d == nil {
		return nil
	}
	m := &kvMeta{Current: uint64(num(d["current_version"])), Oldest: uint64(num(d["oldest_version"])),
		MaxVersions: num(d["max_versions"]), Versions: map[uint64]kvVersion{}}
	m.CASRequired, _ = d["cas_required"].(bool)
	if s, ok := d["delete_version_after"].(string); ok {
		m.DeleteVersionAfter, _ = time.ParseDuration(s)
	}
	if c, ok := d["custom_metadata"].(map[string]any); ok && len(c) > 0 {
		m.Custom = c
	}
	vs, _ := d["versions"].(map[string]any)
	for k, raw := range vs {
		n, err := strconv.ParseUint(k, 10, 64)
		if err != nil {
			continue
		}
		v, _ := raw.(map[string]any)
		kv := kvVersion{}
		kv.Created, _ = v["created_time"].(string)
		kv.Deletion, _ = v["deletion_time"].(string)
		kv.Destroyed, _ = v["destroyed"].(bool)
		m.Versions[n] = kv
	}
	return m
}

// sameMetaFields compares what `metadata` writes set.
func sameMetaFields(a, b *kvMeta) bool {
	return a.MaxVersions == b.MaxVersions && a.CASRequired == b.CASRequired &&
		a.DeleteVersionAfter == b.DeleteVersionAfter && equalJSON(a.Custom, b.Custom)
}

// sameMeta compares everything the import reproduces.
func sameMeta(a, b *kvMeta) bool {
	if a.Current != b.Current || !sameMetaFields(a, b) || len(a.Versions) != len(b.Versions) {
		return false
	}
	for n, va := range a.Versions {
		vb, ok := b.Versions[n]
		if !ok || va.Destroyed != vb.Destroyed || !sameTime(va.Created, vb.Created) || !sameTime(va.Deletion, vb.Deletion) {
			return false
		}
	}
	return true
}

// importKV2 brings one KV v2 secret up to the source: the versions Ledger lacks, in order, with
// their source times; deletion and destruction states; the metadata. Versions already here
// must carry the source's created_time, else the secret is a conflict. After importing, the
// source's metadata is read again; if the secret changed meanwhile, the difference is imported
// too (a few rounds at most) and the item says so.
func (im *importer) importKV2(ctx context.Context, m *mountInfo, rel string) Item {
	it := Item{Kind: KindKV2, Path: m.Path + rel}
	metaPath := m.Path + "metadata/" + rel
	raw, err := read(ctx, im.src, metaPath)
	if err != nil {
		it.Status, it.Reason = Unreadable, reason("read metadata", err)
		return it
	}
	src := parseMeta(raw)
	if src == nil {
		it.Status, it.Reason = Unreadable, "gone from the source while importing"
		return it
	}
	wrote := false
	var notes []string
	for round := 0; ; round++ {
		st, r, n := im.syncKV2(ctx, m, rel, src)
		it.Versions += n
		if r != "" && (st == Imported || st == Updated) {
			notes = append(notes, r)
		}
		if st == Updated || st == Imported {
			wrote = true
		}
		if st != Imported && st != Updated && st != Unchanged {
			it.Status, it.Reason = st, r
			return it
		}
		if im.opt.DryRun {
			it.Status, it.Reason = st, r
			return it
		}
		again, err := read(ctx, im.src, metaPath)
		if err != nil {
			it.Status, it.Reason = Unreadable, reason("re-read metadata", err)
			return it
		}
		now := parseMeta(again)
		if now == nil {
			it.Changed = true
			it.Status, it.Reason = Updated, "deleted at the source during the import: kept here as imported"
			return it
		}
		if sameMeta(now, src) {
			switch {
			case !wrote:
				it.Status = Unchanged
			case it.Versions > 0 && round == 0 && st == Imported:
				it.Status = Imported
			default:
				it.Status = Updated
			}
			if it.Changed {
				notes = append(notes, "the source changed during the import: re-read and reconciled")
			}
			it.Reason = strings.Join(notes, "; ")
			return it
		}
		if round >= 3 {
			it.Changed = true
			it.Status, it.Reason = Updated, "the source kept changing during the import: the state of the last read was imported; re-run to catch up"
			return it
		}
		it.Changed = true
		src = now
	}
}

// syncKV2 makes Ledger's copy of one secret match src. It returns the status, a reason and
// the number of versions written.
func (im *importer) syncKV2(ctx context.Context, m *mountInfo, rel string, src *kvMeta) (Status, string, int) {
	metaPath := m.Path + "metadata/" + rel
	haveRaw, err := read(ctx, im.dst, metaPath)
	if err != nil {
		if !(im.opt.DryRun && status(err) == http.StatusNotFound) {
			return Failed, reason("read metadata from Ledger", err), 0
		}
	}
	have := parseMeta(haveRaw)
	if have != nil && !ours(have, src) {
		if !im.opt.Overwrite {
			return Conflict, "Ledger holds other versions here (-overwrite to replace them with the source's)", 0
		}
		if im.opt.DryRun {
			return WouldImport, "would replace Ledger's versions (-overwrite)", 0
		}
		if _, err := im.dst.Logical().DeleteWithContext(ctx, metaPath); err != nil {
			return Failed, reason("delete Ledger's versions (-overwrite)", err), 0
		}
		have = nil
	}
	if have == nil {
		have = &kvMeta{Versions: map[uint64]kvVersion{}}
	}
	if sameMeta(have, src) {
		return Unchanged, "", 0
	}
	if im.opt.DryRun {
		return WouldImport, fmt.Sprintf("%d version(s)", int(src.Current)-int(have.Current)), 0
	}
	now := time.Now()
	written := 0
	var notes []string
	// New versions, in order, sent in as few requests as fit (one for most secrets): each
	// request is one append on the Ledger side.
	var batch []any
	size := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if _, err := write(ctx, im.dst, m.Path+"import/"+rel, map[string]any{"oldest_version": src.Oldest, "versions": batch}); err != nil {
			return err
		}
		written += len(batch)
		im.versions.Add(int64(len(batch)))
		batch, size = nil, 0
		return nil
	}
	for n := have.Current + 1; n <= src.Current; n++ {
		v, ok := src.Versions[n]
		if !ok {
			continue // trimmed at the source (below oldest_version)
		}
		body := map[string]any{"version": n, "created_time": v.Created}
		switch {
		case v.Destroyed:
			body["destroyed"] = true
		case v.deleted(now):
			body["deletion_time"] = v.Deletion
			notes = append(notes, fmt.Sprintf("version %d is deleted at the source, which does not give its value: imported deleted, without it", n))
		default:
			s, err := im.src.Logical().ReadWithDataWithContext(ctx, m.Path+"data/"+rel, map[string][]string{"version": {strconv.FormatUint(n, 10)}})
			var data map[string]any
			if err == nil && s != nil {
				data, _ = s.Data["data"].(map[string]any)
			}
			if err != nil && status(err) != http.StatusNotFound {
				return Unreadable, reason(fmt.Sprintf("read version %d", n), err), written
			}
			if data == nil {
				// Deleted or destroyed since the metadata was read: the next round re-reads it.
				body["deletion_time"] = now.UTC().Format(time.RFC3339Nano)
			} else {
				body["data"] = data
				if b, err := json.Marshal(data); err == nil {
					size += len(b)
					clear(b)
				}
			}
			if v.Deletion != "" {
				body["deletion_time"] = v.Deletion // scheduled by delete_version_after
			}
		}
		batch = append(batch, body)
		if size > maxImportBatchBytes {
			if err := flush(); err != nil {
				return Failed, reason(fmt.Sprintf("import versions up to %d", n), err), written
			}
		}
	}
	if err := flush(); err != nil {
		return Failed, reason(fmt.Sprintf("import versions up to %d", src.Current), err), written
	}
	// States of versions that were here already.
	var del, undel, destroy []uint64
	for n, hv := range have.Versions {
		sv, ok := src.Versions[n]
		if !ok {
			continue
		}
		switch {
		case sv.Destroyed && !hv.Destroyed:
			destroy = append(destroy, n)
		case sv.deleted(now) && !hv.deleted(now) && !hv.Destroyed:
			del = append(del, n)
		case !sv.deleted(now) && hv.deleted(now) && !sv.Destroyed:
			undel = append(undel, n)
		}
	}
	for _, op := range []struct {
		ep string
		vs []uint64
	}{{"destroy", destroy}, {"delete", del}, {"undelete", undel}} {
		if len(op.vs) == 0 {
			continue
		}
		sort.Slice(op.vs, func(i, j int) bool { return op.vs[i] < op.vs[j] })
		if _, err := write(ctx, im.dst, m.Path+op.ep+"/"+rel, map[string]any{"versions": op.vs}); err != nil {
			return Failed, reason(op.ep, err), written
		}
	}
	if !sameMetaFields(have, src) || have.Current == 0 && src.Current == 0 {
		body := map[string]any{"max_versions": src.MaxVersions, "cas_required": src.CASRequired,
			"delete_version_after": src.DeleteVersionAfter.String()}
		custom := map[string]any{}
		for k, v := range src.Custom {
			custom[k] = v
		}
		body["custom_metadata"] = custom
		if _, err := write(ctx, im.dst, metaPath, body); err != nil {
			return Failed, reason("write metadata", err), written
		}
	}
	st := Imported
	if have.Current > 0 || len(have.Versions) > 0 {
		st = Updated
	}
	return st, strings.Join(notes, "; "), written
}

// maxImportBatchBytes bounds the values sent in one import request, well under the server's
// 32 MiB request limit.
const maxImportBatchBytes = 4 << 20

// ours says whether Ledger's versions of a secret are the source's, imported earlier: every
// version here is one the source has (or had: trimmed since), with the source's created_time.
func ours(have, src *kvMeta) bool {
	if have.Current > src.Current {
		return false
	}
	for n, hv := range have.Versions {
		sv, ok := src.Versions[n]
		if !ok {
			if n >= src.Oldest && src.Oldest > 0 {
				return false
			}
			continue
		}
		if !sameTime(hv.Created, sv.Created) {
			return false
		}
	}
	return true
}

// equalJSON compares two decoded JSON values, numbers by their text.
func equalJSON(a, b any) bool {
	ja, e1 := json.Marshal(a)
	jb, e2 := json.Marshal(b)
	if e1 != nil || e2 != nil {
		return reflect.DeepEqual(a, b)
	}
	var x, y any
	d1 := json.NewDecoder(strings.NewReader(string(ja)))
	d1.UseNumber()
	d2 := json.NewDecoder(strings.NewReader(string(jb)))
	d2.UseNumber()
	if d1.Decode(&x) != nil || d2.Decode(&y) != nil {
		return string(ja) == string(jb)
	}
	return reflect.DeepEqual(normalise(x), normalise(y))
}

// normalise makes empty maps and slices equal to absent ones, and numbers equal by value.
func normalise(v any) any {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 0 {
			return nil
		}
		out := map[string]any{}
		for k, x := range t {
			if n := normalise(x); n != nil {
				out[k] = n
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		out := make([]any, len(t))
		strs := true
		for i, x := range t {
			out[i] = normalise(x)
			_, isStr := out[i].(string)
			strs = strs && isStr
		}
		if strs { // lists of names (policies, members, keys): order carries no meaning
			sort.Slice(out, func(i, j int) bool { return out[i].(string) < out[j].(string) })
		}
		return out
	case json.Number:
		if f, err := t.Float64(); err == nil {
			return f
		}
		return t.String()
	case string:
		if t == "" {
			return nil
		}
		return t
	case bool:
		if !t {
			return nil
		}
		return t
	}
	return v
}

// sameValue compares two secret values exactly (numbers by their text).
func sameValue(a, b map[string]any) bool {
	ja, e1 := json.Marshal(a)
	jb, e2 := json.Marshal(b)
	return e1 == nil && e2 == nil && string(ja) == string(jb)
}
