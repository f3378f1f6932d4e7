//go:build !linux

package main

import (
	"fmt"
	"os"
)

// main says why there is nothing to run: compmem takes each server's
// memory from Linux's /proc.
func main() {
	fmt.Fprintln(os.Stderr, "compmem: runs on Linux only: it reads each server's memory from /proc")
	os.Exit(2)
}
