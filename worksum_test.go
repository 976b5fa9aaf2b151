package intake_test

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestGoDocKeepsGoWorkSum: a read-only command run in the workspace (go
// doc of a package of each kind of module) leaves the committed
// go.work.sum as it is, so that reading the docs never dirties the tree.
// Issue #21, item 19. It fails when a dependency change left go.work.sum
// incomplete: commit what the go command added.
func TestGoDocKeepsGoWorkSum(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the go command")
	}
	// Outside the workspace (GOWORK=off, or a copy of the core module
	// alone) the other modules are not here to document: issue #34, item 15.
	gowork, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		t.Fatalf("go env GOWORK: %v", err)
	}
	if w := strings.TrimSpace(string(gowork)); w == "" || w == "off" {
		t.Skip("the workspace is not in use (GOWORK=off or no go.work)")
	}
	before, err := os.ReadFile("go.work.sum")
	if err != nil {
		t.Skip("not in the workspace: ", err)
	}
	for _, pkg := range []string{
		"github.com/intakehq/intake/dedupe",
		"github.com/intakehq/intake/backend/postgres",
		"github.com/intakehq/intake/cmd/intake",
		"github.com/intakehq/intake/examples/loadtest",
		"github.com/intakehq/intake/console/browsertest",
	} {
		cmd := exec.Command("go", "doc", pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go doc %s: %v\n%s", pkg, err, out)
		}
	}
	after, err := os.ReadFile("go.work.sum")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Errorf("go doc changed go.work.sum (%d → %d bytes): the committed one is incomplete; commit what was added", len(before), len(after))
	}
}
