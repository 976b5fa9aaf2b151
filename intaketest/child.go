package intaketest

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Child runs the test binary again as a child process, with env added to
// the environment (the package's TestMain reads it and plays the child)
// and -test.run=^$ so that it runs no test of its own. Its stderr is the
// test's; it is killed, if still running, when the test ends. Crash tests
// use it to SIGKILL a process that holds events.
func Child(t testing.TB, env ...string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, bufio.NewReader(out)
}

// FirstLine returns the child's first line on stdout, trimmed; it fails
// the test if none comes within limit (a child stuck, say retrying a
// refusal for ever).
func FirstLine(t testing.TB, out *bufio.Reader, limit time.Duration) string {
	t.Helper()
	said := make(chan string, 1)
	go func() {
		line, _ := out.ReadString('\n')
		said <- strings.TrimSpace(line)
	}()
	select {
	case line := <-said:
		return line
	case <-time.After(limit):
		t.Fatalf("the child said nothing in %v", limit)
		return ""
	}
}
