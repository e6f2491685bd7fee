package replay

import (
	"os"
	"strings"
	"sync"
	"time"
)

// Prefetch is a node's newest checkpoint copy read ahead of unseal. Reading a checkpoint up to
// its late sections needs no keys (Store.DecodeEarly's checks are the framing and the header;
// the sections stay sealed until Open), and at 1M secrets it is a second of unseal: the
// bytes, and the page faults of the buffers they go into. A server starts it beside its
// log's start (JetStream rebuilding its streams keeps one core busy for most of that time)
// and hands it to the Store (UsePrefetched): LoadBase then takes it in place of reading the
// same copy again, when that copy is the checkpoint it loads and the late views are the same.
// A prefetch nobody takes is released (Close) — at the latest keep after it started, so a
// server left sealed does not hold a checkpoint's bytes.
type Prefetch struct {
	name string
	late func(view string) bool
	done chan struct{}

	mu     sync.Mutex
	f      *File
	err    error
	closed bool // taken or released
}

// PrefetchLocal starts reading the newest checkpoint copy in dir (a node's checkpoint copies,
// OpenLocal) up to the sections of the views late reports, and returns at once; nil when
// the directory holds no copy.
func PrefetchLocal(dir string, late func(view string) bool, keep time.Duration) *Prefetch {
	l := &Local{dir: dir, writing: map[string]bool{}}
	name := l.newest()
	if name == "" {
		return nil
	}
	p := &Prefetch{name: name, late: late, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		var f *File
		src, size, err := l.open(name)
		if err == nil {
			f, err = decodeEarly(src, size, late, func() { src.Close() })
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed {
			if f != nil {
				f.Close()
			}
			return
		}
		p.f, p.err = f, err
	}()
	time.AfterFunc(keep, p.Close)
	return p
}

// Name is the checkpoint being read ahead.
func (p *Prefetch) Name() string { return p.name }

// Ready is closed once the read ahead is over, whatever its outcome.
func (p *Prefetch) Ready() <-chan struct{} { return p.done }

// take hands over the prefetched decode of checkpoint name — as decodeLocal would have
// returned it — once, when it is that checkpoint, it read the same sections late defers,
// and it was not released; ok is false otherwise.
func (p *Prefetch) take(name string, late func(view string) bool) (f *File, ok bool, err error) {
	if p == nil || p.name != name {
		return nil, false, nil
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, nil
	}
	p.closed = true
	f, err = p.f, p.err
	p.f, p.err = nil, nil
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if f != nil {
		for _, s := range f.Header.Sections {
			if (late != nil && late(s.Name)) != (p.late != nil && p.late(s.Name)) {
				f.Close() // read up to other sections than this load defers
				return nil, false, nil
			}
		}
	}
	return f, true, err
}

// Close releases what was read ahead unless it was taken; safe to call more than once, and on
// a nil Prefetch. It does not wait for the read.
func (p *Prefetch) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	if p.f != nil {
		p.f.Close()
	}
	p.f, p.err = nil, nil
}

// newest is the name of the newest checkpoint copy in the directory, "" for none.
func (l *Local) newest() string {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return ""
	}
	var best string
	for _, e := range entries {
		digits, ok := strings.CutSuffix(e.Name(), localSuffix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		name := autoPrefix + digits
		if _, ok := autoSeq(name); ok && name > best {
			best = name // fixed width: the names sort as their positions do
		}
	}
	return best
}
