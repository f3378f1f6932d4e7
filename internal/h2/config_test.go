package h2

import (
	"context"
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
	cc, s := startConfig(t, Config{SendPingTimeout: 400 * time.Millisecond, PingTimeout: 400 * time.Millisecond})
	s.settings()
	got := s.frames()
	ourPing := func(h frameHeader) bool { return h.typ == framePing && h.flags&flagAck == 0 }
	// The server's PINGs, every 50 ms for 600 ms, keep the client from
	// sending its own (8 times as often as needed, for a busy machine).
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
	// Then quiet: a PING comes about 400 ms after the last frame, and
	// again 400 ms after its answer.
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
	if gap := pings[2].Sub(last); gap < 350*time.Millisecond {
		t.Errorf("a PING %v after the last frame, want about 400 ms", gap)
	}
	// The third goes unanswered: the connection ends PingTimeout later.
	select {
	case <-cc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the connection lives 5 s after a PING went unanswered")
	}
	// (Seen here a moment after the client sent it: half the timeout
	// is the bound, which ending at once would break.)
	if took := time.Since(pings[2]); took < 200*time.Millisecond {
		t.Errorf("the connection ended %v after the unanswered PING, want PingTimeout, 400 ms", took)
	}
	want := "http2: connection closed: a PING went unanswered for 400ms"
	if err := cc.Err(); err == nil || err.Error() != want {
		t.Fatalf("the connection's error: %v, want %q", err, want)
	}
}

// TestWriteByteTimeout: with WriteByteTimeout, a Write without a deadline
// whose socket takes nothing for that long ends with the connection, and
// says why.
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
}

// TestWriteByteTimeoutDeadlineMoved: WriteByteTimeout bounds every
// piece, whatever the stream's write deadline does meanwhile. A
// SetWriteDeadline during the flush (a context's watch moving it, a
// caller clearing it) rewrote the socket's deadline under the piece
// under way: cleared, the piece waited for good on a socket that takes
// nothing, wlock held; moved an hour out, for an hour.
func TestWriteByteTimeoutDeadlineMoved(t *testing.T) {
	const timeout = 300 * time.Millisecond
	for _, tc := range []struct {
		name           string
		before, during time.Time
	}{
		{"cleared", time.Now().Add(time.Hour), time.Time{}},
		{"moved", time.Time{}, time.Now().Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc, s := startConfig(t, Config{WriteByteTimeout: timeout})
			s.settings(settingInitialWindowSize, maxWindow)
			st := open(t, cc, s)
			s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
			st.SetWriteDeadline(tc.before)
			done := make(chan error, 1)
			go func() {
				_, err := st.Write(make([]byte, 64<<20)) // past what the sockets hold
				done <- err
			}()
			time.Sleep(100 * time.Millisecond) // the socket is full: a piece waits
			st.SetWriteDeadline(tc.during)
			want := "http2: connection closed: the socket took no bytes for 300ms (WriteByteTimeout)"
			select {
			case err := <-done:
				if err == nil || err.Error() != want {
					t.Fatalf("Write: %v, want %q", err, want)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("Write still blocked 3 s on a socket that takes nothing, WriteByteTimeout 300 ms")
			}
		})
	}
}

// TestWriteByteTimeoutTrickle: a socket that takes bytes every 100 ms,
// 512 bytes at a time, never goes WriteByteTimeout (500 ms) without
// taking any, and the connection lives. Each 4 KiB piece had 500 ms to
// go out whole, which takes 800 ms here.
func TestWriteByteTimeoutTrickle(t *testing.T) {
	const timeout = 500 * time.Millisecond
	nc, snc := net.Pipe()
	cc, s := startOn(t, Config{WriteByteTimeout: timeout}, nc, snc)
	s.settings(settingInitialWindowSize, maxWindow)
	st := open(t, cc, s)
	s.write(frameWindowUpdate, 0, 0, binary.BigEndian.AppendUint32(nil, maxWindow-defaultWindow))
	go func() {
		buf := make([]byte, 512)
		for {
			time.Sleep(100 * time.Millisecond)
			if _, err := s.nc.Read(buf); err != nil {
				return
			}
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := st.Write(make([]byte, 64<<10))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Write to a socket taking 512 bytes every 100 ms: %v, want it under way", err)
	case <-time.After(2 * time.Second):
	}
	if err := cc.Err(); err != nil {
		t.Fatalf("the connection ended while its socket took bytes every 100 ms: %v", err)
	}
}

// TestPingJoinsPingOut: a server that answers every PING within 700 ms
// answers a Ping given 1.3 s. A Ping made while the health check's PING
// was out waited for that one's answer, then sent its own, 1.4 s in all,
// and its time ran out: a Dial's probeSilent (h2ProbeWait) took the
// connection for silent, though the server had just answered a PING.
func TestPingJoinsPingOut(t *testing.T) {
	const delay = 700 * time.Millisecond
	cc, s := startConfig(t, Config{SendPingTimeout: 200 * time.Millisecond, PingTimeout: 10 * time.Second})
	s.settings()
	got := s.frames()
	sent := make(chan struct{}, 16)
	go func() {
		for h := range got {
			if h.typ != framePing || h.flags&flagAck != 0 {
				continue
			}
			sent <- struct{}{}
			ack := appendFrameHeader(nil, 8, framePing, flagAck, 0)
			ack = binary.BigEndian.AppendUint64(ack, uint64(h.streamID))
			time.AfterFunc(delay, func() { s.nc.Write(ack) })
		}
	}()
	select {
	case <-sent: // the health check's PING
	case <-time.After(5 * time.Second):
		t.Fatal("no health check PING")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 1300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := cc.Ping(ctx); err != nil {
		t.Fatalf("Ping, with every PING answered in %v: %v after %v", delay, err, time.Since(start))
	}
}

// TestNoHeadersAfterGoAway: a stream whose HEADERS are still queued
// when a GOAWAY refuses it (its identifier past the last one the server
// processes) is not opened after all: §6.8, "Receivers of a GOAWAY frame
// MUST NOT open additional streams on the connection". The HEADERS went
// out once the socket took them, after the GOAWAY, the stream already
// retried elsewhere.
func TestNoHeadersAfterGoAway(t *testing.T) {
	nc, snc := net.Pipe()
	cc, s := startOn(t, Config{}, nc, snc)
	open(t, cc, s)
	// The server reads nothing for now: the PING holds ctrlLoop in the
	// pipe, and stream 3's HEADERS stay queued behind it.
	pctx, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	pinged := make(chan error, 1)
	go func() { pinged <- cc.Ping(pctx) }()
	waitFor(t, "ctrlLoop to take the PING", func() bool {
		cc.pingMu.Lock()
		out := cc.pingOut != nil
		cc.pingMu.Unlock()
		cc.ctrlMu.Lock()
		defer cc.ctrlMu.Unlock()
		return out && len(cc.ctrl) == 0
	})
	time.Sleep(50 * time.Millisecond) // and to block in the pipe
	st3, err := cc.OpenStream(connectFields(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer st3.Close()
	s.write(frameGoAway, 0, 0, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), uint32(ErrCodeNo)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := st3.Response(ctx); !Unprocessed(err) {
		t.Fatalf("stream 3 past the GOAWAY: %v, want it unprocessed", err)
	}
	// The server reads again: the PING, then nothing of stream 3.
	if h, _ := s.read(); h.typ != framePing {
		t.Fatalf("frame of type %d, want the PING", h.typ)
	}
	s.nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	hb := make([]byte, headerLen)
	if _, err := s.nc.Read(hb); err == nil {
		if h := parseFrameHeader(hb); h.typ == frameHeaders {
			t.Fatalf("HEADERS of stream %d after the GOAWAY that refused it", h.streamID)
		}
	}
	pcancel()
	<-pinged
}

// TestNoResetOfDroppedHeaders: a stream that a GOAWAY refuses while its
// HEADERS are still queued, and that its owner closes between the
// GOAWAY's marking it refused and its end (onGoAway ends the refused
// streams one after the other, outside cc.mu), has its RST_STREAM queued:
// writeCtrlLocked drops its HEADERS and sends the RST_STREAM, on a
// stream that is idle to the server, a connection error PROTOCOL_ERROR
// (§5.1). onGoAway is held at the end of one refused stream, whose mu the
// test holds; the streams that map order puts after it are refused and
// not yet ended, and one of them is closed.
func TestNoResetOfDroppedHeaders(t *testing.T) {
	for attempt := range 10 {
		cc, s := startConfig(t, Config{})
		open(t, cc, s)
		cc.wlock <- struct{}{} // the queue stays unwritten
		var sts []*Stream
		for range 8 {
			st, err := cc.OpenStream(connectFields(), false)
			if err != nil {
				t.Fatal(err)
			}
			sts = append(sts, st)
		}
		held := sts[0]
		held.mu.Lock()
		s.write(frameGoAway, 0, 0, binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 1), uint32(ErrCodeNo)))
		waitFor(t, "the GOAWAY's refusals", func() bool { return sts[len(sts)-1].refused.Load() })
		time.Sleep(20 * time.Millisecond) // onGoAway reaches held.end
		var closed *Stream
		for _, st := range sts[1:] {
			st.mu.Lock()
			ended := st.endSent
			st.mu.Unlock()
			if st.refused.Load() && !ended {
				closed = st
				st.Close() // refused, not yet ended
				break
			}
		}
		held.mu.Unlock()
		<-cc.wlock
		cc.kickCtrl()
		if closed == nil {
			continue // held came last
		}
		s.nc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var headers, rst bool
		hb := make([]byte, headerLen)
		for {
			if _, err := io.ReadFull(s.nc, hb); err != nil {
				break
			}
			h := parseFrameHeader(hb)
			if _, err := io.ReadFull(s.nc, make([]byte, h.length)); err != nil {
				break
			}
			headers = headers || h.typ == frameHeaders && h.streamID == closed.id
			rst = rst || h.typ == frameRSTStream && h.streamID == closed.id
		}
		if rst && !headers {
			t.Fatalf("attempt %d: RST_STREAM on stream %d, whose HEADERS the GOAWAY kept out: an idle stream to the server", attempt, closed.id)
		}
		return
	}
	t.Skip("the held stream came last every time")
}

// TestStreamWindow: Config.StreamWindow is announced as
// SETTINGS_INITIAL_WINDOW_SIZE (startConfig checks the preface) and
// bounds each stream: the server may send that much unread, and a byte
// more resets the stream with FLOW_CONTROL_ERROR; half of it read is
// credited back.
func TestStreamWindow(t *testing.T) {
	const window = 20 << 10
	t.Run("credit", func(t *testing.T) {
		cc, s := startConfig(t, Config{StreamWindow: window})
		st := open(t, cc, s)
		s.write(frameData, 0, st.ID(), make([]byte, window/2))
		if _, err := io.ReadFull(st, make([]byte, window/2)); err != nil {
			t.Fatal(err)
		}
		h, p := s.expect(frameWindowUpdate)
		if h.streamID != st.ID() || binary.BigEndian.Uint32(p) != window/2 {
			t.Fatalf("WINDOW_UPDATE of %d on stream %d, want %d on %d", binary.BigEndian.Uint32(p), h.streamID, window/2, st.ID())
		}
	})
	t.Run("overrun", func(t *testing.T) {
		cc, s := startConfig(t, Config{StreamWindow: window})
		st := open(t, cc, s)
		s.write(frameData, 0, st.ID(), make([]byte, window/2))
		s.write(frameData, 0, st.ID(), make([]byte, window/2))
		s.write(frameData, 0, st.ID(), make([]byte, 1))
		h, p := s.expect(frameRSTStream)
		if h.streamID != st.ID() || ErrCode(binary.BigEndian.Uint32(p)) != ErrCodeFlowControl {
			t.Fatalf("RST_STREAM %v on stream %d, want FLOW_CONTROL_ERROR on %d", ErrCode(binary.BigEndian.Uint32(p)), h.streamID, st.ID())
		}
	})
}

// TestStreamWindowOfOne: with Config.StreamWindow 1 (net/http takes a
// MaxReceiveBufferPerStream of 1), half the window is 0 bytes, and an
// empty DATA frame, which §6.1 allows, or a Read into an empty buffer
// must not credit the stream with a WINDOW_UPDATE of 0, which §6.9 has
// the server treat as a stream error PROTOCOL_ERROR. The first
// WINDOW_UPDATE on the stream must credit the byte read.
func TestStreamWindowOfOne(t *testing.T) {
	for _, emptyRead := range []bool{false, true} {
		t.Run(map[bool]string{false: "empty DATA", true: "empty Read"}[emptyRead], func(t *testing.T) {
			cc, s := startConfig(t, Config{StreamWindow: 1})
			st := open(t, cc, s)
			if !emptyRead {
				s.write(frameData, 0, st.ID(), nil) // empty, not the end
			}
			s.write(frameData, 0, st.ID(), []byte("x"))
			if emptyRead {
				if _, err := st.Read(nil); err != nil { // returns once "x" is held
					t.Fatal(err)
				}
			}
			if _, err := io.ReadFull(st, make([]byte, 1)); err != nil {
				t.Fatal(err)
			}
			for {
				h, p := s.read()
				if h.typ != frameWindowUpdate || h.streamID != st.ID() {
					continue
				}
				if incr := binary.BigEndian.Uint32(p); incr != 1 {
					t.Fatalf("WINDOW_UPDATE of %d on stream %d, want 1 (§6.9: 0 is a stream error)", incr, h.streamID)
				}
				return
			}
		})
	}
}
