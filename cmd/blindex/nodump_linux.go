//go:build linux

package main

import "syscall"

// prSetDumpable is PR_SET_DUMPABLE of prctl(2).
const prSetDumpable = 4

// disableCoreDumps keeps the server's memory (unwrapped keys, decrypted
// records) out of core dumps and out of reach of ptrace by other processes
// of the same user: the process is made non-dumpable (prctl PR_SET_DUMPABLE
// 0, which also makes /proc/PID/mem readable by root only) and its core
// size limit is set to zero.
func disableCoreDumps() error {
	if _, _, errno := syscall.RawSyscall6(syscall.SYS_PRCTL, prSetDumpable, 0, 0, 0, 0, 0); errno != 0 {
		return errno
	}
	return syscall.Setrlimit(syscall.RLIMIT_CORE, &syscall.Rlimit{Cur: 0, Max: 0})
}
