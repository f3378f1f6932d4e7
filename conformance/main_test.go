// Package conformance_test is the conformance suite: a raw peer that writes
// and checks exact bytes plays each role against the library, through its
// public API alone, over HTTP/1.1 and over HTTP/2 streams.
package conformance_test

import (
	"os"
	"testing"

	"github.com/rfc6455/websocket/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
