package main

import (
	"os"
	"runtime"
	"testing"
)

// TestMain is also the dialing process that measure starts: the test
// binary is the executable it runs again.
func TestMain(m *testing.M) {
	if addr := os.Getenv(envDial); addr != "" {
		if err := dial(addr, os.Getenv(envConns)); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestMeasure: 2,000 connections, each accepted and held, grow the live heap
// by what a net.Conn holds, a few hundred bytes (312 with go1.26 on
// linux/amd64), and not by nothing; held as raw descriptors (-raw, Linux),
// by a few dozen bytes (44: a slot of 8 in a slice, and what grows once,
// spread over them), for the net.Conn is gone.
func TestMeasure(t *testing.T) {
	for _, raw := range []bool{false, true} {
		if raw && runtime.GOOS != "linux" {
			continue
		}
		rss, heap, err := measure(2000, raw)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("raw %v: VmRSS %.2f KiB per connection, %.2f KiB after GC; live heap %d B", raw, rss[0], rss[1], heap)
		switch {
		case !raw && (heap < 100 || heap > 2048):
			t.Errorf("live heap %d B per held connection, want a few hundred", heap)
		case raw && heap > 64:
			t.Errorf("live heap %d B per connection held as a descriptor, want at most 64", heap)
		}
	}
}
