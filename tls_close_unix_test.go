//go:build unix

package websocket

import (
	"crypto/tls"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestTLSCloseNowBounded: CloseNow on a TLS connection whose peer stopped
// reading, its socket's send buffer full and no write under way, returns
// at once: it waited 5 s, crypto/tls's bound on sending the close_notify
// alert that the full socket could not take. So does the half-close that
// a server failing the connection makes (the same alert).
func TestTLSCloseNowBounded(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"CloseNow", "half-close"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			tlsCloseBounded(t, how)
		})
	}
}

// tlsCloseBounded is one case of TestTLSCloseNowBounded.
func tlsCloseBounded(t *testing.T, how string) {
	sc := stalledTLSConn(t)
	sock := sc.tr.rw.(*tls.Conn).NetConn().(*net.TCPConn)
	sock.SetWriteBuffer(4 << 10)
	// Fill the socket under TLS, as writes that completed would have,
	// until it takes no more.
	rc, err := sock.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	filler := make([]byte, 1<<10)
	// Rounds of writes until one takes nothing, 50 ms after the last: the
	// peer's window and the socket's buffer are both full.
	for wrote := 1; wrote > 0; time.Sleep(50 * time.Millisecond) {
		wrote = 0
		for full := false; !full; {
			rc.Write(func(fd uintptr) bool {
				n, err := syscall.Write(int(fd), filler)
				wrote += max(n, 0)
				full = err != nil
				return true
			})
		}
	}
	start := time.Now()
	if how == "CloseNow" {
		if err := sc.CloseNow(); err != nil {
			t.Fatalf("CloseNow: %v", err)
		}
	} else {
		if !sc.tr.halfClose {
			t.Fatal("a TLS connection that cannot half-close")
		}
		sc.tr.closeWrite()
		t.Cleanup(func() { sc.CloseNow() })
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("%s took %v", how, took)
	}
}
