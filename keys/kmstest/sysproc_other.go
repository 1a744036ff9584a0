//go:build !linux

package kmstest

import (
	"os/exec"
	"testing"
)

func setSysProcAttr(*exec.Cmd) {}

// Freeze needs SIGSTOP: the test is skipped on this platform.
func (s *Server) Freeze(t testing.TB) { t.Skip("kmstest: Freeze needs SIGSTOP (Linux)") }

// Thaw needs SIGCONT: the test is skipped on this platform.
func (s *Server) Thaw(t testing.TB) { t.Skip("kmstest: Thaw needs SIGCONT (Linux)") }
