// Package snippettest compiles every Go block of the README and the
// guides in docs/, so that no guide drifts from the API.
//
// A block that is a whole file (it begins with "package") is built as
// it is. Any other block is a fragment: it is wrapped in a function (or,
// when it declares functions or types, placed at the top level) of a
// file that imports the packages the guides use and declares what they
// take for granted (ctx, stream, pg, mux, your own functions: prelude.go
// in testdata). A block preceded by the line
// "<!-- snippet: not compiled (why) -->" is skipped; say why.
package snippettest

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// block is one fenced Go block of a Markdown file.
type block struct {
	file string // as the test names it
	line int    // of its first line of code
	code string
	skip string // why it is not compiled
}

// blocks returns the Go blocks of a Markdown file.
func blocks(t *testing.T, path string) []block {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	prev := ""
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		n++
		ln := sc.Text()
		switch {
		case cur == nil && strings.TrimSpace(ln) == "```go":
			cur = &block{file: path, line: n + 1}
			if strings.HasPrefix(prev, "<!-- snippet: not compiled") {
				cur.skip = prev
			}
		case cur != nil && strings.TrimSpace(ln) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.code += ln + "\n"
		}
		if strings.TrimSpace(ln) != "" {
			prev = strings.TrimSpace(ln)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: a Go block is never closed", path, cur.line)
	}
	return out
}

var topLevel = regexp.MustCompile(`(?m)^(func|type|var|const) `)

// source returns the file a block is compiled as, and how many lines of
// wrapper come before the block's first line.
func source(pkg string, b block, prelude string) (string, int) {
	if strings.HasPrefix(strings.TrimSpace(b.code), "package ") {
		return b.code, 0
	}
	head := strings.Replace(prelude, "package prelude", "package "+pkg, 1)
	if topLevel.MatchString(b.code) {
		head += "\n"
		return head + b.code, strings.Count(head, "\n")
	}
	head += "\nfunc _() {\n"
	return head + b.code + "}\n", strings.Count(head, "\n")
}

// ignored are the compiler's complaints that a fragment cannot avoid:
// it shows a value being made, not used.
var ignored = regexp.MustCompile(`declared and not used|imported and not used`)

func TestSnippetsCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	files, err := filepath.Glob("../*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	prelude, err := os.ReadFile("testdata/prelude.go")
	if err != nil {
		t.Fatal(err)
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	gen := filepath.Join("testdata", "gen-"+hex.EncodeToString(r[:]))
	t.Cleanup(func() { os.RemoveAll(gen) })
	type placed struct {
		b      block
		offset int
	}
	where := map[string]placed{}
	compiled, skipped := 0, 0
	for _, f := range files {
		for _, b := range blocks(t, f) {
			if b.skip != "" {
				skipped++
				continue
			}
			pkg := fmt.Sprintf("s%03d", compiled)
			src, off := source(pkg, b, string(prelude))
			dir := filepath.Join(gen, pkg)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "snippet.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			where[pkg] = placed{b, off}
			compiled++
		}
	}
	if compiled < 10 {
		t.Fatalf("%d Go blocks found in the README and docs/: the extraction is broken", compiled)
	}
	cmd := exec.Command("go", "build", "-o", os.DevNull, "./"+filepath.ToSlash(gen)+"/...")
	out, _ := cmd.CombinedOutput()
	// Errors name gen/sNNN/snippet.go:LINE:COL: map them to the guide.
	loc := regexp.MustCompile(`(?:^|/)(s\d{3})/snippet\.go:(\d+):(\d+): (.*)$`)
	var problems []string
	for _, ln := range strings.Split(string(out), "\n") {
		m := loc.FindStringSubmatch(ln)
		if m == nil {
			if strings.TrimSpace(ln) != "" && !strings.HasPrefix(ln, "#") {
				problems = append(problems, ln)
			}
			continue
		}
		if ignored.MatchString(m[4]) {
			continue
		}
		p := where[m[1]]
		l, _ := strconv.Atoi(m[2])
		problems = append(problems, fmt.Sprintf("%s:%d: %s", p.b.file, p.b.line+l-1-p.offset, m[4]))
	}
	if len(problems) > 0 {
		t.Fatalf("%d Go blocks compiled, %d not (marked); they do not build:\n%s", compiled, skipped, strings.Join(problems, "\n"))
	}
	t.Logf("%d Go blocks compiled, %d marked not compiled", compiled, skipped)
}
