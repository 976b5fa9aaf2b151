//go:build !linux

package intaketest

import "os/exec"

// dieWithParent does nothing where the kernel cannot kill a child with
// its parent: the test's cleanup kills it.
func dieWithParent(*exec.Cmd) {}
