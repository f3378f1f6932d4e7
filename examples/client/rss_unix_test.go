//go:build unix

package main

import (
	"os"
	"runtime"
	"syscall"
)

// peakRSS returns the peak resident memory of a process that ended, in
// bytes.
func peakRSS(ps *os.ProcessState) int64 {
	maxrss := ps.SysUsage().(*syscall.Rusage).Maxrss
	if runtime.GOOS == "darwin" {
		return maxrss // bytes there; KiB elsewhere
	}
	return maxrss << 10
}

// ownPeakRSS returns this process's peak resident memory, in bytes. On
// Linux a child's reported peak is at least this, as it stood when the
// child started: the child shares this process's memory from its fork
// until its exec, and the kernel keeps the larger peak.
func ownPeakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return ru.Maxrss
	}
	return ru.Maxrss << 10
}
