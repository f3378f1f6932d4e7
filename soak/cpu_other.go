//go:build !unix

package main

import "time"

// cpuTime reports false: the CPU time is measured on Unix only.
func cpuTime() (time.Duration, bool) { return 0, false }
