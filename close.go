package websocket

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// isCloseSent reports whether err says that our close frame went out
// before, by another call.
func isCloseSent(err error) bool {
	_, ok := err.(*closeSentError)
	return ok
}

// Close performs the closing handshake (RFC 6455 §7.1.2): it sends a close
// frame with code and reason, reads until the peer's close frame arrives
// (delivering nothing more to Read or Reader), and closes the connection.
// A server closes the TCP connection at once; a client waits for the
// server to close it first (§7.1.1). The whole handshake is bounded by the
// close timeout (AcceptOptions.CloseTimeout, DialOptions.CloseTimeout),
// after which the connection is closed regardless; but on a server's
// HTTP/2 stream, Close (as CloseWrite and CloseNow) returns only once a
// write under way on another goroutine has ended, which a socket that
// takes nothing holds until the HTTP/2 connection ends (see the package
// documentation, HTTP/2).
//
// Close returns nil when the peer's close frame arrived, else an error
// wrapping ErrClosed that says why it did not. A close frame that breaks
// the protocol (a 1-byte payload, code 1005, a reason not UTF-8) does not
// count: the error wraps the *ProtocolError, although no second close
// frame goes out with its code. Nor does an answer behind a violation that
// a Read beside Close meets first (a frame with a reserved opcode, say):
// the error says the closing handshake failed and why, naming the close
// sent, and carries StatusAbnormalClosure. When the close timeout
// passed first, the error says so, naming the close that went unanswered,
// and carries StatusAbnormalClosure, the code of a connection closed with
// no close frame from the peer (RFC 6455 §7.1.5); later calls, and a
// CloseWrite's reader, report the same. So it is, the I/O error wrapped,
// when the connection is lost first (the peer closed TCP without
// answering, say). A Close that finds the
// connection ended already, a Read beside it having completed the
// handshake the peer began, say, returns an error wrapping ErrClosed and
// the end (the peer's CloseError). Code must be one
// a close frame may carry (1000-1003, 1007-1014, 3000-4999), or
// StatusNoStatusRcvd to send a close frame without a code; reason must be
// UTF-8 of at most 123 bytes. Otherwise Close returns an error at once,
// sends nothing and leaves the connection open, to be closed again with
// arguments that fit (an error's text as a reason may need cutting).
//
// Close may be called concurrently with Read and the other methods. To keep
// reading the peer's messages until its close frame arrives, use CloseWrite.
func (c *Conn) Close(code StatusCode, reason string) error {
	payload, err := closePayload(code, reason)
	if err != nil {
		return err
	}
	c.discard.Store(true)
	deadline := time.Now().Add(c.closeTimeout)
	ctx, cancel := context.WithDeadlineCause(context.Background(), deadline, errCloseTimeout)
	defer cancel()
	ce := CloseError{code, reason}
	c.setFirstEnd(ce, intentWritten)
	if err := c.writeClose(ctx, payload, ce); err != nil && !isCloseSent(err) {
		if c.isClosed() {
			return c.closedErr("close")
		}
		// Our close frame did not go: the connection ends for why not.
		return c.closeUnsent(ctx, err)
	}
	// A reader busy with the connection finishes the handshake itself when
	// the peer's close comes (and closes the connection, waking this wait);
	// otherwise the peer's close is read here.
	switch c.readMu.lock(ctx.Done()) {
	case lockCanceled:
		c.closeTransport(errCloseTimeout)
	case lockTaken:
		if !c.isClosed() {
			if !c.peerCloseReceived() {
				c.drainUntilCloseLocked(deadline)
				if !c.peerCloseReceived() && !time.Now().Before(deadline) {
					c.closeTransport(errCloseTimeout)
				}
			}
			c.finishLocked(deadline)
		}
		c.readUnlock()
	}
	return c.closeResult()
}

// closeResult is what Close returns once the connection is closed.
func (c *Conn) closeResult() error {
	if c.peerClosedValid() {
		return nil
	}
	return c.closedErr("close")
}

// CloseWrite starts the closing handshake but leaves reading to the
// caller: it sends a close frame with code and reason and returns. Read and
// Reader go on delivering the messages the peer sent before it saw the
// close frame; once the peer's close frame arrives they return it as a
// CloseError, and the connection is closed as Close would. If that takes
// longer than the close timeout, the connection is closed regardless; so
// it is when the close frame cannot be sent within the close timeout, and
// CloseWrite then returns why. Writes fail from the moment CloseWrite is
// called. A read whose context ends inside a message gives up on the
// peer's answer: the connection is closed at once, with
// StatusAbnormalClosure (see Read).
func (c *Conn) CloseWrite(code StatusCode, reason string) error {
	payload, err := closePayload(code, reason)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), c.closeTimeout, errCloseTimeout)
	defer cancel()
	ce := CloseError{code, reason}
	c.setFirstEnd(ce, intentWritten)
	if err := c.writeClose(ctx, payload, ce); err != nil {
		if !isCloseSent(err) {
			// The close frame could not go out within the close timeout
			// (a write stuck on a peer that reads nothing holds the frame
			// lock): the handshake cannot happen, and nothing else would
			// end the connection, which ends for why not.
			return c.closeUnsent(ctx, err)
		}
		return err
	}
	c.armCloseTimeout()
	return nil
}

// closeUnsent closes the connection whose close frame writeClose could
// not send, for why not, err, and returns what Close and CloseWrite
// report: the close timeout, when ctx, theirs, ended first, else err.
func (c *Conn) closeUnsent(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		c.closeTransport(errCloseTimeout)
		return c.closedErr("close")
	}
	c.closeTransport(err)
	return err
}

// armCloseTimeout bounds a closing handshake whose close frame is sent,
// or queued, and whose answer nobody waits for: the connection is closed
// when the close timeout passes.
func (c *Conn) armCloseTimeout() {
	c.setCloseTimer(time.AfterFunc(c.closeTimeout, func() { c.closeTransport(errCloseTimeout) }))
}

// CloseNow closes the connection without a closing handshake. Blocked
// calls return an error wrapping ErrClosed.
func (c *Conn) CloseNow() error {
	if !c.closeTransport(nil) {
		return c.closedErr("close")
	}
	return nil
}

func (c *Conn) setCloseTimer(t *time.Timer) {
	if old := c.closeTimer.Swap(t); old != nil {
		old.Stop()
	}
	if c.closing.Load() {
		// closeTransport has begun, and may have stopped the timer this
		// one replaced: it would not see this one.
		t.Stop()
	}
}

// writeClose sends a close frame, once, after any frames queued before it.
// Once it is sent, end, the end it stands for, is the connection's end for
// good if what was recorded was only a close yet to be sent: this frame
// is the one that went, whoever recorded theirs (Close, CloseWrite and
// keepalive may each wait for the frame lock with an end of their own).
func (c *Conn) writeClose(ctx context.Context, payload []byte, end error) error {
	if err := c.lock(ctx, &c.frameMu, "close"); err != nil {
		return err
	}
	c.pendMu.Lock()
	if err := c.writableLocked("close"); err != nil {
		c.refuseUnlock(ctx)
		return err
	}
	defer c.frameMu.unlock()
	c.backlogBeforeCloseLocked()
	c.closeSent = true
	h := c.keyLocked(header{fin: true, op: opClose})
	pend := c.takePendWithLocked(h, payload)
	c.pendMu.Unlock()
	err := c.writeFrameLocked(ctx, pend, h, payload)
	if pend != nil {
		// The frames taken went, were put back, or were dropped.
		c.pendMu.Lock()
		c.inflight = 0
		c.pendMu.Unlock()
	}
	if err == nil {
		c.mu.Lock()
		if c.endIntent != noIntent {
			c.endErr, c.endIntent = end, noIntent
		}
		c.mu.Unlock()
	}
	// The frame is written as a message's is: its error names the close
	// (a write that found the connection closing under it said "write").
	return asOp(err, "close")
}

// peerCloseReceived reports whether the peer's close frame arrived, valid
// or not: the peer sends nothing after it.
func (c *Conn) peerCloseReceived() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeRcvd != nil
}

// peerClosedValid reports whether the peer's close frame arrived and was
// valid: a closing handshake completed.
func (c *Conn) peerClosedValid() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeRcvd != nil && c.closeRcvd.Code != 0
}

// gotCloseLocked takes in the peer's close frame. It returns the frame as a
// CloseError, or the *ProtocolError its payload breaks.
//
// The caller holds readMu.
func (c *Conn) gotCloseLocked(payload []byte) error {
	ce, err := parseClosePayload(payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeRcvd == nil {
		c.closeRcvd = &ce // Code 0 when invalid
	}
	if err != nil {
		// An answer that breaks the protocol does not complete the
		// handshake our close began, sent or on its way: the violation is
		// the end. A failure of ours stays the end.
		if _, ours := c.endErr.(CloseError); ours || c.endIntent != noIntent {
			c.endErr, c.endIntent = err, noIntent
		}
		return err
	}
	return ce
}

// peerClosedLocked completes a closing handshake once the peer's close
// frame ce arrived, and returns ce for the reader.
//
// The caller holds readMu.
func (c *Conn) peerClosedLocked(ce CloseError) error {
	if c.keepaliveAnsweredLocked() {
		// The answer to the keepalive's close frame: the peer's silence
		// stays the end, which the read reports, as every call does,
		// the next one too, once the keepalive has closed the connection
		// (closeAwait).
		if c.rs.client {
			c.drainRawLocked(time.Now().Add(c.closeTimeout))
		}
		c.closeAwait(nil)
		return c.closedErr("read")
	}
	c.setEnd(ce)
	deadline := time.Now().Add(c.closeTimeout)
	// §5.5.1: "If an endpoint receives a Close frame and did not previously
	// send a Close frame, the endpoint MUST send a Close frame in response.
	// (When sending a Close frame in response, the endpoint typically echos
	// the status code it received.)"
	var echo []byte
	if ce.Code != StatusNoStatusRcvd {
		echo = binary.BigEndian.AppendUint16(nil, uint16(ce.Code))
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	c.writeClose(ctx, echo, ce)
	cancel()
	c.finishLocked(deadline)
	return ce
}

// keepaliveAnsweredLocked reports whether the keepalive failed the
// connection and its close frame went out, so that a close frame from the
// peer is the answer to it, and makes that failure the connection's end
// for good: a peer that answered the close, not the ping, was silent all
// the same. It may come before the keepalive has noted its frame as sent
// (writeClose), which a close frame of the peer's would otherwise replace.
//
// The caller holds readMu.
func (c *Conn) keepaliveAnsweredLocked() bool {
	c.pendMu.Lock()
	sent := c.closeSent
	c.pendMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, silent := c.endErr.(*keepaliveError); !silent || !sent {
		return false
	}
	c.endIntent = noIntent
	return true
}

// failLocked fails the connection (RFC 6455 §7.1.7): it sends a close
// frame with pe's code and reason and closes the connection, within the
// close timeout, and returns pe.
//
// The framing may be lost by now (the failure can come in the middle of a
// frame, and the peer may answer before finishing it), so a server that
// can half-close does so, letting the peer read our close frame followed
// by the end of the stream, and then waits for the peer to close rather
// than for its close frame. A server whose transport closes in order
// (an HTTP/2 stream) closes at once: nothing the peer still sends can
// reset what we wrote. A client waits for the server to close, as always.
//
// The caller holds readMu.
func (c *Conn) failLocked(pe *ProtocolError) error {
	if c.isClosed() {
		return c.closedErr("read")
	}
	deadline := time.Now().Add(c.closeTimeout)
	sent := c.sendFailCloseLocked(pe, deadline)
	switch {
	case c.rs.client, c.tr.closeInOrder:
	case c.tr.halfClose:
		c.tr.closeWrite()
		c.drainRawLocked(deadline)
	case !c.peerCloseReceived():
		c.drainUntilCloseLocked(deadline)
	}
	c.finishLocked(deadline)
	return c.failedErr(pe, sent)
}

// failedErr is what a read that failed the connection with pe returns,
// sent saying whether pe's close frame went out: pe, or else the
// connection's end, which names no code that never went on the wire.
func (c *Conn) failedErr(pe *ProtocolError, sent bool) error {
	if sent {
		return pe
	}
	return c.closedErr("read")
}

// failNowLocked fails the connection as failLocked does, but closes it
// as soon as its close frame is out, without waiting for the peer's: for
// a read whose context ended inside a message, which must not outlast
// its context by the close timeout (the peer has likely stalled).
//
// The caller holds readMu.
func (c *Conn) failNowLocked(pe *ProtocolError) error {
	if c.isClosed() {
		return c.closedErr("read")
	}
	sent := c.sendFailCloseLocked(pe, time.Now().Add(c.closeNowWait()))
	c.closeAwait(nil)
	return c.failedErr(pe, sent)
}

// closeNowWait bounds the write of a close frame sent by a read whose
// context ended (failNowLocked, inputCutLocked), which must not outlast
// its context by the close timeout: the peer has likely stalled.
func (c *Conn) closeNowWait() time.Duration { return min(c.closeTimeout, 100*time.Millisecond) }

// lostMessageLocked ends the connection of a read whose context ended,
// for why, inside a message being delivered: it fails the connection with
// StatusPolicyViolation (failNowLocked), or, once our close frame is out,
// which no other may follow, closes it (readCutLocked).
//
// The caller holds readMu.
func (c *Conn) lostMessageLocked(why error) error {
	if c.closeFrameSent() {
		return c.readCutLocked(why)
	}
	pe := protocolErr(StatusPolicyViolation, "read context ended inside a message")
	pe.err = why
	return c.failNowLocked(pe)
}

// inputCutLocked ends a connection whose input a read's context ended
// for good (a server's HTTP/2 stream, which has no deadlines: see
// closeCause), mid saying whether part of a message was read. As a
// read whose context ends inside a message on a socket, it sends a close
// frame, within 100 ms, and closes without waiting for the peer's: 1008
// failing the connection when a message is lost, 1001 between messages,
// where the end is the context's, as it was before the close frame went.
// A close frame already sent or under way stays the one that goes: once
// Close has begun, the message it drops is nobody's, and the end is the
// context's too, Close's answer from the peer being past reading; after
// CloseWrite, the message lost, the end is 1006 (readCutLocked).
//
// The caller holds readMu.
func (c *Conn) inputCutLocked(ctx context.Context, mid bool) error {
	if mid && !c.discard.Load() {
		why := ctx.Err()
		if why == nil {
			why = c.tr.inputCut() // a later read's, the context that cut the input being another's
		}
		return c.lostMessageLocked(why)
	}
	end := c.tr.inputCut()
	c.setFirstEnd(end, noIntent)
	wctx, cancel := context.WithTimeout(context.Background(), c.closeNowWait())
	c.writeClose(wctx, mustClosePayload(StatusGoingAway, "read context ended"), end)
	cancel()
	c.closeAwait(nil)
	return c.closedErrFor(ctx, "read")
}

// readCutLocked ends the connection of a read whose context ended, for
// err, inside a message that was being delivered after our close frame
// went (CloseWrite's, or a shutdown's): the message is lost, no close frame
// failing the connection (1008) can follow ours, and the read gives up on
// the peer's answer, which would come behind the rest of the message. So
// the connection is closed at once, its end, without the peer's close
// frame, StatusAbnormalClosure (RFC 6455 §7.1.5), as for a connection
// lost before the answer came (lostError). The read returns that end,
// as every later call does.
//
// The caller holds readMu.
func (c *Conn) readCutLocked(err error) error {
	lost := &lostError{err: err, readCut: true}
	c.closeAwait(lost)
	c.mu.Lock()
	end := c.endErr
	c.mu.Unlock()
	if end == error(lost) {
		return lost
	}
	// Another end came first (the close timeout's, say): it is the one.
	return c.closedErr("read")
}

// sendFailCloseLocked sends the close frame of pe, failing the
// connection, by deadline, and reports whether it went.
//
// The caller holds readMu.
func (c *Conn) sendFailCloseLocked(pe *ProtocolError, deadline time.Time) bool {
	// pe is the end once its frame goes. A close frame that goes first
	// (Close's, waiting behind a stuck write, or sent already) is the
	// end instead: pe's could not follow it.
	c.setFirstEnd(pe, intentWritten)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	switch err := c.writeClose(ctx, mustClosePayload(pe.Code, pe.Reason), pe); {
	case err == nil:
		return true
	case isCloseSent(err):
		c.setBroken(pe)
	default:
		// The close frame could not go out by deadline, nor had another:
		// the failure is the end, without its code.
		c.setEnd(unsentEnd(pe))
	}
	return false
}

// drainUntilCloseLocked reads and drops frames until the peer's close frame
// arrives, the transport fails, or deadline passes. It checks nothing but
// the framing: our close frame is sent, nothing more is delivered.
//
// The caller holds readMu.
func (c *Conn) drainUntilCloseLocked(deadline time.Time) {
	if c.isClosed() {
		return // writing our close frame failed, and closed the connection
	}
	c.setReadDeadline(deadline)
	for {
		for c.frameLeft > 0 {
			if c.rb.isEmpty() && !c.fillClosingLocked(deadline) {
				return
			}
			n := int(min(c.frameLeft, int64(c.rb.len())))
			c.rb.consume(n)
			c.frameLeft -= int64(n)
		}
		h, n, err := parseHeader(c.rb.bytes())
		if err != nil || (h.op == opClose && h.length > maxControlPayload) {
			c.brokenLocked(deadline)
			return
		}
		if n == 0 || (h.op == opClose && c.rb.len() < n+int(h.length)) {
			if !c.fillClosingLocked(deadline) {
				return
			}
			continue
		}
		c.rb.consume(n)
		if h.op == opClose {
			payload := c.rb.bytes()[:h.length]
			c.rb.consume(int(h.length))
			if h.masked {
				maskBytes(h.key, 0, payload)
			}
			c.gotCloseLocked(payload)
			return
		}
		c.frameLeft = h.length
	}
}

// fillClosingLocked reads more of what the peer sends after our close
// frame, and reports whether it could. A transport that fails before
// deadline has lost the connection before the peer's close frame came:
// the connection ends so (setLost). At deadline, Close's timeout ends it.
//
// The caller holds readMu.
func (c *Conn) fillClosingLocked(deadline time.Time) bool {
	err := c.rb.fill(c.tr.rw, false)
	if err != nil && time.Now().Before(deadline) {
		c.closeTransport(&lostError{err: err})
	}
	return err == nil
}

// brokenLocked handles a stream whose framing can no longer be followed
// after our close frame went out: a server half-closes if it can, so the
// peer reads the end of the stream rather than a reset, and both roles
// wait for the peer to close.
//
// The caller holds readMu.
func (c *Conn) brokenLocked(deadline time.Time) {
	if !c.rs.client && c.tr.halfClose {
		c.tr.closeWrite()
	}
	c.drainRawLocked(deadline)
}

// finishLocked closes the connection once the close frames are exchanged
// (or given up on). RFC 6455 §7.1.1: "the underlying TCP connection, in
// most normal cases, SHOULD be closed first by the server", so a client
// waits, until deadline, for the server to close.
//
// The caller holds readMu.
func (c *Conn) finishLocked(deadline time.Time) {
	if c.rs.client {
		c.drainRawLocked(deadline)
	}
	c.closeTransport(nil)
}

// drainRawLocked reads and drops bytes until the transport reports an
// error (normally the end of the stream) or deadline passes.
//
// The caller holds readMu.
func (c *Conn) drainRawLocked(deadline time.Time) {
	if c.isClosed() {
		return
	}
	c.setReadDeadline(deadline)
	for {
		c.rb.consume(c.rb.len())
		if err := c.rb.fill(c.tr.rw, false); err != nil {
			return
		}
	}
}

// setReadDeadline bounds the reads of a closing handshake.
func (c *Conn) setReadDeadline(t time.Time) {
	if c.tr.dl != nil {
		c.pauseWatch(watchRead)
		c.tr.dl.SetReadDeadline(t)
		return
	}
	c.setCloseTimer(time.AfterFunc(time.Until(t), func() { c.closeTransport(errCloseTimeout) }))
}

// closePayload encodes the payload of a close frame to send.
func closePayload(code StatusCode, reason string) ([]byte, error) {
	if code == StatusNoStatusRcvd {
		if reason != "" {
			return nil, errors.New("websocket: a close reason needs a status code")
		}
		return nil, nil
	}
	if !code.validReceived() {
		return nil, fmt.Errorf("websocket: status code %d may not be sent in a close frame", int(code))
	}
	if len(reason) > maxCloseReasonBytes {
		return nil, fmt.Errorf("websocket: close reason of %d bytes exceeds %d", len(reason), maxCloseReasonBytes)
	}
	if !utf8.ValidString(reason) {
		return nil, errors.New("websocket: close reason is not valid UTF-8")
	}
	b := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	return append(b, reason...), nil
}

// mustClosePayload encodes a close frame for a failure, cutting the reason
// to fit at a character boundary.
func mustClosePayload(code StatusCode, reason string) []byte {
	b, err := closePayload(code, fitReason(reason))
	if err != nil {
		b = binary.BigEndian.AppendUint16(nil, uint16(StatusInternalError))
	}
	return b
}

// fitReason cuts a close reason to the 123 bytes a close frame holds, at a
// character boundary.
func fitReason(reason string) string {
	if len(reason) > maxCloseReasonBytes {
		reason = reason[:maxCloseReasonBytes]
		for len(reason) > 0 && !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	return reason
}

// parseClosePayload decodes the payload of a received close frame
// (RFC 6455 §5.5.1, §7.4).
func parseClosePayload(p []byte) (CloseError, error) {
	switch len(p) {
	case 0:
		// §7.1.5: "If this Close control frame contains no status code,
		// _The WebSocket Connection Close Code_ is considered to be 1005."
		return CloseError{Code: StatusNoStatusRcvd}, nil
	case 1:
		// §5.5.1: "If there is a body, the first two bytes of the body MUST
		// be a 2-byte unsigned integer".
		return CloseError{}, protocolErr(StatusProtocolError, "close frame payload of 1 byte")
	}
	code := StatusCode(binary.BigEndian.Uint16(p))
	if !code.validReceived() {
		return CloseError{}, protocolErr(StatusProtocolError, fmt.Sprintf("invalid close code %d", int(code)))
	}
	// §5.5.1: "the data MUST be UTF-8-encoded" (§8.1 makes a violation a
	// failure of the connection).
	if !utf8.Valid(p[2:]) {
		return CloseError{}, protocolErr(StatusInvalidFramePayloadData, "close reason is not valid UTF-8")
	}
	return CloseError{Code: code, Reason: string(p[2:])}, nil
}
