package kmstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// setSysProcAttr has the kernel kill local-kms if the test binary dies
// without running its cleanups (a timeout panic, a crash).
func setSysProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// Freeze stops local-kms with SIGSTOP: it keeps its socket, and requests
// hang until their client gives up (an unresponsive KMS). Thaw resumes it.
//
// It returns once the kernel reports the process stopped: SIGSTOP lands
// asynchronously, and requests sent in between would still be answered.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatalf("kmstest: SIGSTOP: %v", err)
	}
	stat := fmt.Sprintf("/proc/%d/stat", s.proc.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(stat)
		// The state is the field after the parenthesised command name.
		if i := bytes.LastIndexByte(b, ')'); err == nil && i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kmstest: local-kms did not stop within 5 s of SIGSTOP")
		}
		time.Sleep(time.Millisecond)
	}
}

// Thaw resumes a frozen local-kms with SIGCONT.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	if err := s.proc.Signal(syscall.SIGCONT); err != nil {
		t.Fatalf("kmstest: SIGCONT: %v", err)
	}
}
