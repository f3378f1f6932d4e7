package h2

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"
)

// frames reads the client's frames in the background, for a test that
// must watch them go by while it writes.
func (s *rawServer) frames() <-chan frameHeader {
	ch := make(chan frameHeader, 64)
	go func() {
		defer close(ch)
		hb := make([]byte, headerLen)
		for {
			if _, err := io.ReadFull(s.nc, hb); err != nil {
				return
			}
			h := parseFrameHeader(hb)
			p := make([]byte, h.length)
			if _, err := io.ReadFull(s.nc, p); err != nil {
				return
			}
			if h.typ == framePing && h.flags&flagAck == 0 {
				h.streamID = uint32(binary.BigEndian.Uint64(p)) // which PING, for the test to answer
			}
			ch <- h
		}
	}()
	return ch
}

// TestHealthCheck: with SendPingTimeout, a connection on which the
// server sends nothing for that long is pinged, stays while the PINGs
// are answered, and ends when one goes unanswered for PingTimeout. One
// on which the server keeps sending frames is not pinged.
func TestHealthCheck(t *testing.T) {
	cc, s := startConfig(t, Config{SendPingTimeout: 200 * time.Millisecond, PingTimeout: 400 * time.Millisecond})
	s.settings()
	got := s.frames()
	ourPing := func(h frameHeader) bool { return h.typ == framePing && h.flags&flagAck == 0 }
	// The server's PINGs, every 50 ms for 600 ms, keep the client from
	// sending its own.
	for range 12 {
		s.write(framePing, 0, 0, []byte("servers!"))
		time.Sleep(50 * time.Millisecond)
	}
	for quiet := time.After(100 * time.Millisecond); ; {
		select {
		case h := <-got:
			if ourPing(h) {
				t.Fatal("the client pinged a server that sent a frame every 50 ms")
			}
			continue
		case <-quiet:
		}
		break
	}
	// Then quiet: a PING comes about 200 ms after the last frame, and
	// again 200 ms after its answer.
	var pings []time.Time
	last := time.Now()
	for len(pings) < 3 {
		select {
		case h := <-got:
			if !ourPing(h) {
				continue
			}
			pings = append(pings, time.Now())
			if len(pings) < 3 {
				s.write(framePing, flagAck, 0, binary.BigEndian.AppendUint64(nil, uint64(h.streamID)))
				last = time.Now()
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%d PINGs in 5 s of quiet, want 3", len(pings))
		}
	}
	if gap := pings[2].Sub(last); gap < 150*time.Millisecond {
		t.Errorf("a PING %v after the last frame, want about 200 ms", gap)
	}
	// The third goes unanswered: the connection ends PingTimeout later.
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection lives 5 s after a PING went unanswered")
	}
	if took := time.Since(pings[2]); took < 350*time.Millisecond {
		t.Errorf("the connection ended %v after the unanswered PING, want PingTimeout, 400 ms", took)
	}
	want := "http2: connection closed: a PING went unanswered for 400ms"
	if err := cc.Err(); err == nil || err.Error() != want {
		t.Fatalf("the connection's error: %v, want %q", err, want)
	}
}

// TestWriteByteTimeout: with WriteByteTimeout, a Write without a deadline
// whose socket takes nothing for that long ends with the connection, and
// says why; one whose socket takes bytes slowly goes on.
func TestWriteByteTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	t.Run("stalled", func(t *testing.T) {
		cc, s := startConfig(t, Config{WriteByteTimeout: timeout})
		s.settings(settingInitialWindowSize, maxWindow)
		st := open(t, cc, s)
		s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
		done := make(chan error, 1)
		go func() {
			_, err := st.Write(make([]byte, 64<<20)) // past what the sockets hold
			done <- err
		}()
		want := "http2: connection closed: the socket took no bytes for 300ms (WriteByteTimeout)"
		select {
		case err := <-done:
			if err == nil || err.Error() != want {
				t.Fatalf("Write: %v, want %q", err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Write still blocked 5 s on a socket that takes nothing, WriteByteTimeout 300 ms")
		}
		if err := cc.Err(); err == nil || err.Error() != want {
			t.Fatalf("the connection's error: %v, want %q", err, want)
		}
	})
	t.Run("slow", func(t *testing.T) {
		// On a pipe, which holds nothing, each piece waits for the
		// server's read: 4 KiB every 100 ms, well within each 300 ms.
		nc, snc := net.Pipe()
		cc, s := startOn(t, Config{WriteByteTimeout: timeout}, nc, snc)
		s.settings(settingInitialWindowSize, maxWindow)
		st := open(t, cc, s)
		s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
		go func() {
			buf := make([]byte, 4<<10)
			for {
				time.Sleep(100 * time.Millisecond)
				if _, err := s.nc.Read(buf); err != nil {
					return
				}
			}
		}()
		done := make(chan error, 1)
		go func() {
			_, err := st.Write(make([]byte, 1<<20))
			done <- err
		}()
		select {
		case err := <-done:
			t.Fatalf("Write to a slow reader: %v, want it under way", err)
		case <-time.After(2 * time.Second):
		}
		if err := cc.Err(); err != nil {
			t.Fatalf("the connection ended while its socket took bytes: %v", err)
		}
	})
}
