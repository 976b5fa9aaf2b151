package intaketest

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes the kernel kill the child when the test process
// dies, even of a panic or a timeout that skips the test's cleanup.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
