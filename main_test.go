package websocket

import (
	"os"
	"testing"

	"github.com/rfc6455/websocket/internal/leakcheck"
)

// TestMain fails the run when goroutines outlive the tests: every Conn,
// server and timer a test starts must be gone when it ends.
func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
