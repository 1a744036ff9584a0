//go:build linux

package main

import (
	"syscall"
	"testing"
)

// prGetDumpable is PR_GET_DUMPABLE of prctl(2).
const prGetDumpable = 3

// TestDisableCoreDumps checks that the process is no longer dumpable and
// may not write a core file after disableCoreDumps (which `blindex serve`
// calls before opening any key).
func TestDisableCoreDumps(t *testing.T) {
	if err := disableCoreDumps(); err != nil {
		t.Fatal(err)
	}
	d, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prGetDumpable, 0, 0, 0, 0, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if d != 0 {
		t.Errorf("PR_GET_DUMPABLE = %d after disableCoreDumps, want 0", d)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_CORE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != 0 || lim.Max != 0 {
		t.Errorf("RLIMIT_CORE = %+v after disableCoreDumps, want 0/0", lim)
	}
}
