package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// closeRaceRounds is how many times each row of TestCloseRace races its
// closers on a fresh connection.
const closeRaceRounds = 10

// TestCloseRace: closes made at once from several goroutines, in both
// roles, put one close frame on the wire, the peer's answer to which
// completes the handshake, and each call returns what its documentation
// says. Close returns nil once the peer's close frame arrived, whoever
// sent the close it answers, or, having found the connection ended
// already, an error wrapping ErrClosed and that close; never
// ErrCloseSent, which only a sender of frames (CloseWrite here) returns.
// CloseWrite returns nil when its close frame went. CloseNow returns nil
// when it closed the connection, and the calls it cut short an error
// wrapping ErrClosed. Each Close and CloseWrite sends a code of its own,
// so the frame on the wire names its sender.
func TestCloseRace(t *testing.T) {
	t.Parallel()
	rows := []struct {
		name    string
		closers []string
	}{
		{"Close", []string{"Close", "Close", "Close", "Close", "Close", "Close", "Close", "Close"}},
		{"Close and CloseWrite", []string{"Close", "CloseWrite", "Close", "CloseWrite", "Close", "CloseWrite"}},
		{"Close and CloseNow", []string{"Close", "Close", "Close", "CloseNow", "Close", "CloseWrite"}},
	}
	for _, ourServer := range []bool{true, false} {
		for _, row := range rows {
			t.Run(fmt.Sprintf("server=%v/%s", ourServer, row.name), func(t *testing.T) {
				t.Parallel()
				for range closeRaceRounds {
					closeRace(t, ourServer, row.closers)
				}
			})
		}
	}
}

// closeRace runs one race of closers on a connection with a raw peer,
// which answers the first close frame and counts every one, and checks
// what each closer returned against the frame that went.
func closeRace(t *testing.T, ourServer bool, closers []string) {
	t.Helper()
	errs := make([]error, len(closers))
	p, done := lossPair(t, ourServer, false, nil, func(c *Conn) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, closer := range closers {
			wg.Go(func() {
				<-start
				switch code := StatusCode(4000 + i); closer {
				case "Close":
					errs[i] = c.Close(code, closer)
				case "CloseWrite":
					errs[i] = c.CloseWrite(code, closer)
				case "CloseNow":
					errs[i] = c.CloseNow()
				}
			})
		}
		close(start)
		wg.Wait()
		// CloseWrite's close may stand unanswered until a read takes the
		// answer.
		c.Read(context.Background())
	})
	var sent []string // the payloads of the close frames on the wire
	for {
		f, err := p.readFrame()
		if err != nil {
			break // the end of the stream, or a reset after CloseNow
		}
		if f.b0 != 0x88 {
			t.Fatalf("frame %#x %q on the wire, want only a close frame", f.b0, f.payload)
		}
		sent = append(sent, string(f.payload))
		if len(sent) == 1 {
			p.send(p.frame(0x88, f.payload))
			if !p.client {
				// The server closes first (RFC 6455 §7.1.1).
				p.nc.(*net.TCPConn).CloseWrite()
			}
		}
	}
	p.nc.Close()
	<-done
	switch {
	case len(sent) > 1:
		t.Fatalf("%d close frames on the wire, %q; want one", len(sent), sent)
	case len(sent) == 0 && !slices.Contains(closers, "CloseNow"):
		t.Fatal("no close frame on the wire")
	}
	var went CloseError // the close that went, Code 0 if none did
	sender := -1
	if len(sent) == 1 {
		went, _ = parseClosePayload([]byte(sent[0]))
		sender = int(went.Code) - 4000
	}
	cut := slices.Contains(closers, "CloseNow")
	for i, closer := range closers {
		err := errs[i]
		switch {
		case errors.Is(err, ErrCloseSent) && closer != "CloseWrite":
			t.Errorf("%s %d: %v, want no ErrCloseSent", closer, i, err)
		case err == nil:
			if closer == "CloseWrite" && i != sender {
				t.Errorf("CloseWrite %d: nil, though the close frame that went, %v, is not its own", i, went)
			}
		case !errors.Is(err, ErrClosed):
			t.Errorf("%s %d: %v, want nil or ErrClosed", closer, i, err)
		case closer == "Close" && i == sender && !cut:
			t.Errorf("Close %d: %v, want nil: its close frame went and was answered", i, err)
		case closer == "Close" && !cut && CloseStatus(err) != went.Code:
			t.Errorf("Close %d: %v, want nil or the close that went, %v", i, err, went)
		case closer == "CloseWrite" && i == sender:
			t.Errorf("CloseWrite %d: %v, want nil: its close frame went", i, err)
		}
	}
}

// TestCloseRacesKeepalive: a keepalive turn that found no close frame
// sent, and then the peer silent for its timeout, fails the connection;
// if Close's close frame went out meanwhile, the keepalive's own cannot
// follow it, and the handshake Close began is left to Close, as a turn
// that finds the frame sent leaves it (keepalive.fire): Close returns nil
// once the peer answers, or, from a peer that stays silent, the close
// timeout's error with StatusAbnormalClosure. The keepalive closed the
// connection at once, so that Close, and every call after it, reported
// Close's own close as the end of a handshake that never completed
// ("connection closed: close 1000 (normal closure): bye").
func TestCloseRacesKeepalive(t *testing.T) {
	t.Parallel()
	for _, answer := range []bool{true, false} {
		t.Run(fmt.Sprintf("answer=%v", answer), func(t *testing.T) {
			t.Parallel()
			s, conns := acceptOne(t, &AcceptOptions{CloseTimeout: 500 * time.Millisecond,
				KeepaliveInterval: time.Hour, KeepaliveTimeout: kaTimeout})
			nc := rawClient(t, s.Listener.Addr().String())
			sc := <-conns
			defer sc.CloseNow()
			closed := make(chan error, 1)
			go func() { closed <- sc.Close(StatusNormalClosure, "bye") }()
			if got, err := readServerFrame(nc); err != nil || got != "\x88\x05\x03\xe8bye" {
				t.Fatalf("on the wire: %q, %v; want Close's close frame", got, err)
			}
			// The rest of a keepalive turn (fire) that looked before
			// Close's frame went, and found the peer silent.
			sc.failKeepalive(kaTimeout)
			if answer {
				io.WriteString(nc, clientFrame(0x88, "\x03\xe8bye"))
			}
			err := <-closed
			switch {
			case answer && err != nil:
				t.Errorf("Close: %v, want nil: the peer answered", err)
			case !answer && (!errors.Is(err, ErrClosed) || CloseStatus(err) != StatusAbnormalClosure ||
				err.Error() != "websocket: close: connection closed: the closing handshake timed out: no answer to close 1000 (normal closure): bye"):
				t.Errorf("Close: %v (%d), want the close timeout's error, 1006", err, CloseStatus(err))
			}
			// Nothing follows Close's frame: no close 1011.
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if b, err := io.ReadAll(nc); len(b) > 0 || err != nil {
				t.Errorf("after Close's close frame: %q, %v; want the end of the stream", b, err)
			}
		})
	}
}
