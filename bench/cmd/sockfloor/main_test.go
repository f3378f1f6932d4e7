package main

import (
	"os"
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

// TestMeasure: 200 connections, each accepted and held, grow the live heap
// by what a net.Conn holds, a few hundred bytes (312 with go1.26 on
// linux/amd64), and not by nothing.
func TestMeasure(t *testing.T) {
	rss, heap, err := measure(200)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("VmRSS %.2f KiB per connection, %.2f KiB after GC; live heap %d B", rss[0], rss[1], heap)
	if heap < 100 || heap > 2048 {
		t.Errorf("live heap %d B per held connection, want a few hundred", heap)
	}
}
