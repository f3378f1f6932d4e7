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
