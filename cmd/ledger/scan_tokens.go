package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The scanner's half that never talks to the server: walking files and git history and cutting
// lines into candidate strings. Matching is the server's (sys/ledger/fingerprints/match).

const (
	scanMinLen = 8    // the server refuses shorter candidates (probing); see commands.MinCandidateBytes
	scanMaxLen = 4096 // longer strings are not stored secrets
	sniffLen   = 8192 // bytes looked at to call a file binary
)

// scanLoc is where a candidate was seen.
type scanLoc struct {
	File   string
	Line   int
	Commit string // set for a line found in git history
}

// candidates collects unique candidate strings and where each was seen.
type candidates struct {
	where    map[string][]scanLoc
	order    []string
	maxLocs  int
	files    int
	bytes    int64
	binary   int
	huge     int
	commits  int
	progress func(c *candidates)
}

func newCandidates() *candidates {
	return &candidates{where: map[string][]scanLoc{}, maxLocs: 20}
}

func (c *candidates) add(s string, loc scanLoc) {
	locs, seen := c.where[s]
	if !seen {
		c.order = append(c.order, s)
	}
	if len(locs) < c.maxLocs {
		c.where[s] = append(locs, loc)
	}
}

// tokenise cuts one line into candidate strings: the contents of quoted strings, the values of
// key=value and key: value pairs, the password of a URL's user-info, and every run of
// password-like characters between whitespace (with surrounding quotes and punctuation
// trimmed). Candidates shorter than scanMinLen, longer than scanMaxLen or not valid UTF-8 are
// dropped: a stored secret is a JSON string, so it is valid UTF-8.
func tokenise(line []byte, emit func(string)) {
	seen := map[string]bool{}
	out := func(b []byte) {
		if len(b) < scanMinLen || len(b) > scanMaxLen || !utf8.Valid(b) {
			return
		}
		s := string(b)
		if !seen[s] {
			seen[s] = true
			emit(s)
		}
	}
	// Quoted strings.
	for _, q := range []byte{'"', '\'', '`'} {
		rest := line
		for {
			i := bytes.IndexByte(rest, q)
			if i < 0 {
				break
			}
			rest = rest[i+1:]
			j := 0
			for j < len(rest) && rest[j] != q {
				if rest[j] == '\\' && q == '"' {
					j++
				}
				j++
			}
			if j > len(rest) {
				j = len(rest)
			}
			out(rest[:j])
			if j >= len(rest) {
				break
			}
			rest = rest[j+1:]
		}
	}
	// Whitespace-separated words, trimmed; and the value side of key=value / key: value.
	for _, w := range bytes.Fields(line) {
		t := bytes.Trim(w, "\"'`,;()[]{}<>")
		out(t)
		for _, sep := range []string{"=", ":"} {
			if _, v, ok := bytes.Cut(t, []byte(sep)); ok {
				out(bytes.Trim(v, "\"'`,;()[]{}<>"))
			}
		}
		// scheme://user:password@host
		if _, rest, ok := bytes.Cut(t, []byte("://")); ok {
			authority, _, _ := bytes.Cut(rest, []byte("/"))
			if at := bytes.LastIndexByte(authority, '@'); at > 0 {
				if _, pw, ok := bytes.Cut(authority[:at], []byte(":")); ok {
					out(pw)
				}
			}
		}
	}
	// A key: value line whose value has spaces ("password: correct horse battery staple").
	if k, v, ok := bytes.Cut(line, []byte(":")); ok && !bytes.ContainsAny(bytes.TrimSpace(k), " \t") {
		out(bytes.Trim(bytes.TrimSpace(v), "\"'`,;"))
	}
	if k, v, ok := bytes.Cut(line, []byte("=")); ok && !bytes.ContainsAny(bytes.TrimSpace(k), " \t") {
		out(bytes.Trim(bytes.TrimSpace(v), "\"'`,;"))
	}
}

// scanReader tokenises r line by line, at most limit bytes of it; truncated says there was more.
func (c *candidates) scanReader(r io.Reader, limit int64, loc scanLoc) (truncated bool, err error) {
	br := bufio.NewReaderSize(io.LimitReader(r, limit+1), 64*1024)
	var read int64
	n := 0
	for {
		line, err := readLine(br, 1<<20)
		if len(line) > 0 || err == nil {
			n++
			read += int64(len(line)) + 1
			if read > limit {
				return true, nil
			}
			l := loc
			l.Line = n
			tokenise(line, func(s string) { c.add(s, l) })
		}
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// readLine reads one line without its newline, keeping at most max bytes of a longer one.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, isPrefix, err := br.ReadLine()
		if len(line) < max {
			line = append(line, frag[:min(len(frag), max-len(line))]...)
		}
		if err != nil || !isPrefix {
			return line, err
		}
	}
}

// isBinary: a NUL byte in the first sniffLen bytes, as git decides.
func isBinary(head []byte) bool { return bytes.IndexByte(head, 0) >= 0 }

// scanFile tokenises one file, unless it is binary; a file over limit is read to limit.
func (c *candidates) scanFile(ctx context.Context, path, name string, limit int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, sniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	c.files++
	if isBinary(head[:n]) {
		c.binary++
		return nil
	}
	st, err := f.Stat()
	if err == nil {
		c.bytes += min(st.Size(), limit)
	}
	truncated, err := c.scanReader(io.MultiReader(bytes.NewReader(head[:n]), f), limit, scanLoc{File: name})
	if truncated {
		c.huge++
	}
	if c.progress != nil {
		c.progress(c)
	}
	return err
}

// scanTree tokenises every regular file under root (a file or a directory), leaving out .git.
func (c *candidates) scanTree(ctx context.Context, root string, limit int64) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" && p != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		return c.scanFile(ctx, p, p, limit)
	})
}

// isGitRepo reports whether dir is the top of a git work tree (or a bare repository).
func isGitRepo(dir string) bool {
	if st, err := os.Stat(filepath.Join(dir, ".git")); err == nil && (st.IsDir() || st.Mode().IsRegular()) {
		return true
	}
	_, err := os.Stat(filepath.Join(dir, "HEAD"))
	_, err2 := os.Stat(filepath.Join(dir, "objects"))
	return err == nil && err2 == nil
}

// scanHistory tokenises every line ever added in the repository at dir, on every ref, from
// `git log -p` (see README "Leak response" for why the git binary rather than a Go library).
// A line is reported with the commit that added it and its line number in that commit's file.
func (c *candidates) scanHistory(ctx context.Context, dir string, limit int64) error {
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "log", "-p", "--all", "--no-color", "--no-ext-diff",
		"--no-renames", "-U0", "--format=commit %H", "--diff-filter=AMR")
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "LC_ALL=C")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run git (install git, or scan with -history=false): %w", err)
	}
	perr := c.parseGitLog(out, dir, limit)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if perr != nil {
		return perr
	}
	if werr != nil {
		return fmt.Errorf("git log in %s: %w: %s", dir, werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// parseGitLog reads `git log -p -U0 --format='commit %H'` output.
func (c *candidates) parseGitLog(r io.Reader, dir string, limit int64) error {
	br := bufio.NewReaderSize(r, 256*1024)
	var commit, file string
	lineNo := 0
	var fileBytes int64
	for {
		line, err := readLine(br, 1<<20)
		switch {
		case bytes.HasPrefix(line, []byte("commit ")) && len(line) == 47:
			commit, file = string(line[7:]), ""
			c.commits++
			if c.progress != nil {
				c.progress(c)
			}
		case bytes.HasPrefix(line, []byte("+++ ")):
			name := string(line[4:])
			if name == "/dev/null" {
				file = ""
			} else {
				file = filepath.Join(dir, strings.TrimPrefix(name, "b/"))
			}
			fileBytes = 0
		case bytes.HasPrefix(line, []byte("@@ ")):
			// @@ -a,b +c,d @@
			if _, rest, ok := bytes.Cut(line, []byte(" +")); ok {
				num, _, _ := bytes.Cut(rest, []byte(" "))
				num, _, _ = bytes.Cut(num, []byte(","))
				lineNo, _ = strconv.Atoi(string(num))
			}
		case bytes.HasPrefix(line, []byte("+")) && file != "":
			fileBytes += int64(len(line))
			if fileBytes <= limit && bytes.IndexByte(line, 0) < 0 {
				c.bytes += int64(len(line))
				l := scanLoc{File: file, Line: lineNo, Commit: commit}
				tokenise(line[1:], func(s string) { c.add(s, l) })
			}
			lineNo++
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
