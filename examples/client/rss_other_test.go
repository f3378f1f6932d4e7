//go:build !unix

package main

import "os"

// peakRSS returns 0: these systems do not report it, and the memory bound
// goes unchecked.
func peakRSS(*os.ProcessState) int64 { return 0 }

// ownPeakRSS returns 0 likewise.
func ownPeakRSS() int64 { return 0 }
