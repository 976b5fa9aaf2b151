package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/intakehq/intake/internal/testenv"
)

// TestREADMEQuickStartBuilds builds the README's quick start as a user
// would before the first release: a module of its own, outside the
// workspace, pointed at this repository with the README's own go mod edit
// lines, then go mod tidy and go build. (Issue #21, items 17 and 18: the
// quick start shows the durable backend, and compiles as written, the
// two values of intake.Attempt included.)
func TestREADMEQuickStartBuilds(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("runs the go command")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	i := strings.Index(section, "## Quick start\n")
	if i < 0 {
		t.Fatal("README has no Quick start section")
	}
	section = section[i:]
	program := block(t, section, "```go\n")
	commands := block(t, section, "```sh\n")

	dir := t.TempDir()
	goBin := "go" // go test puts its own GOROOT/bin first on PATH
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(goBin, args...)
		cmd.Dir, cmd.Env = dir, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("mod", "init", "example.com/receiver")
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program), 0o644); err != nil {
		t.Fatal(err)
	}
	commands = strings.ReplaceAll(commands, "\\\n", " ")
	for _, line := range strings.Split(commands, "\n") {
		fields := strings.Fields(strings.ReplaceAll(line, "/src/intake", root))
		if len(fields) == 0 {
			continue
		}
		if fields[0] != "go" {
			t.Fatalf("the README's set-up line %q is not a go command", line)
		}
		run(fields[1:]...)
	}
	run("build", "-o", filepath.Join(dir, "receiver"), ".")
}

// block returns the first fenced block opened by fence in s.
func block(t *testing.T, s, fence string) string {
	t.Helper()
	i := strings.Index(s, fence)
	if i < 0 {
		t.Fatalf("no %q block", strings.TrimSpace(fence))
	}
	s = s[i+len(fence):]
	j := strings.Index(s, "```")
	if j < 0 {
		t.Fatal("unterminated block")
	}
	return s[:j]
}
