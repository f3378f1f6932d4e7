//go:build !linux

package main

import (
	"fmt"
	"os"
)

// main says why there is nothing to run: wsbench takes each server's CPU
// time and memory from Linux's /proc, and pins it to a CPU with taskset.
func main() {
	fmt.Fprintln(os.Stderr, "wsbench: runs on Linux only: it reads each server's CPU time and memory from /proc and pins each server to a CPU with taskset")
	os.Exit(2)
}
