package kmstest

import (
	"os/exec"
	"syscall"
	"testing"
)

// setSysProcAttr has the kernel kill local-kms if the test binary dies
// without running its cleanups (a timeout panic, a crash).
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// Freeze stops local-kms with SIGSTOP: it keeps its socket, and requests
// hang until their client gives up (an unresponsive KMS). Thaw resumes it.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("kmstest: SIGSTOP: %v", err)
	}
}

// Thaw resumes a frozen local-kms with SIGCONT.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("kmstest: SIGCONT: %v", err)
	}
}
