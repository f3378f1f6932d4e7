package h2

import (
	"os"
	"testing"

	"github.com/rfc6455/websocket/internal/leakcheck"
)

func TestMain(m *testing.M) { os.Exit(leakcheck.Run(m)) }
