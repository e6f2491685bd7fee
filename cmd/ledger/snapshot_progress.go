package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// meter shows the progress of a long operation: a bar with rate and ETA when stderr is a
// terminal, otherwise a plain line at most every few seconds (logs and CI stay readable).
type meter struct {
	bar *progressbar.ProgressBar // nil: plain lines

	mu       sync.Mutex
	w        io.Writer
	desc     string
	total    int64
	done     int64
	bytes    bool
	unit     string
	started  time.Time
	lastLine time.Time
	finished bool
}

// newMeter starts a meter of total units (bytes when bytes is set, else unit: "events",
// "batches"). total 0 means unknown.
func (a *app) newMeter(desc string, total int64, bytes bool, unit string) *meter {
	m := &meter{w: a.stderr, desc: desc, total: total, bytes: bytes, unit: unit, started: time.Now()}
	if f, ok := a.stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		max := total
		if max <= 0 {
			max = -1 // spinner
		}
		opts := []progressbar.Option{
			progressbar.OptionSetWriter(a.stderr),
			progressbar.OptionSetDescription(desc),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100 * time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(a.stderr) }),
		}
		if bytes {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionShowIts(), progressbar.OptionSetItsString(unit))
		}
		m.bar = progressbar.NewOptions64(max, opts...)
	}
	return m
}

// Set records absolute progress.
func (m *meter) Set(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.done = n
	if m.bar != nil {
		_ = m.bar.Set64(n)
		return
	}
	if time.Since(m.lastLine) >= 2*time.Second && time.Since(m.started) >= time.Second {
		m.lastLine = time.Now()
		fmt.Fprintln(m.w, m.line())
	}
}

// Add records n more units.
func (m *meter) Add(n int64) {
	m.mu.Lock()
	done := m.done + n
	m.mu.Unlock()
	m.Set(done)
}

// Finish ends the meter; with ok it shows the total reached.
func (m *meter) Finish(ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.finished {
		return
	}
	m.finished = true
	if m.bar != nil {
		if ok {
			_ = m.bar.Finish()
		} else {
			_ = m.bar.Exit()
			fmt.Fprintln(m.w)
		}
		return
	}
	if ok && time.Since(m.started) >= time.Second {
		fmt.Fprintln(m.w, m.line())
	}
}

func (m *meter) line() string {
	el := time.Since(m.started)
	rate := float64(m.done) / max(el.Seconds(), 1e-9)
	amount := func(n int64) string {
		if m.bytes {
			return humanBytes(float64(n))
		}
		return fmt.Sprintf("%d %s", n, m.unit)
	}
	s := m.desc + ": " + amount(m.done)
	if m.total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", amount(m.total), m.done*100/m.total)
	}
	if m.bytes {
		s += fmt.Sprintf(", %s/s", humanBytes(rate))
	} else {
		s += fmt.Sprintf(", %.0f %s/s", rate, m.unit)
	}
	if m.total > 0 && m.done > 0 && m.done < m.total {
		eta := time.Duration(float64(m.total-m.done) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s
}

func humanBytes(n float64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%.0f B", n)
	}
	div, exp := float64(unit), 0
	for x := n / unit; x >= unit && exp < 4; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", n/div, "KMGTP"[exp])
}

// meterReader counts what passes through it.
type meterReader struct {
	r io.Reader
	m *meter
}

func (r meterReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.Add(int64(n))
	return n, err
}
