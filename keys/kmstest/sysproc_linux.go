package kmstest

import (
	"os/exec"
	"syscall"
)

// setSysProcAttr has the kernel kill local-kms if the test binary dies
// without running its cleanups (a timeout panic, a crash).
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
