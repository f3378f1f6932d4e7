package websocket

import (
	"encoding/binary"
	"math"
)

// This file is the frame codec of RFC 6455 §5.2: it reads and appends frame
// headers and checks them against the protocol. It knows nothing of Conn.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-------+-+-------------+-------------------------------+
//	|F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//	|I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//	|N|V|V|V|       |S|             |   (if payload len==126/127)   |
//	| |1|2|3|       |K|             |                               |
//	+-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//	|     Extended payload length continued, if payload len == 127  |
//	+ - - - - - - - - - - - - - - - +-------------------------------+
//	|                               |Masking-key, if MASK set to 1  |
//	+-------------------------------+-------------------------------+

type opcode byte

const (
	opContinuation opcode = 0x0
	opText         opcode = 0x1
	opBinary       opcode = 0x2
	opClose        opcode = 0x8
	opPing         opcode = 0x9
	opPong         opcode = 0xA
)

func (op opcode) isControl() bool { return op&0x8 != 0 }

func (op opcode) String() string {
	switch op {
	case opContinuation:
		return "continuation"
	case opText:
		return "text"
	case opBinary:
		return "binary"
	case opClose:
		return "close"
	case opPing:
		return "ping"
	case opPong:
		return "pong"
	}
	return "reserved opcode " + string("0123456789ABCDEF"[op&0xF])
}

// RSV bits as they sit in the first header byte.
const (
	rsv1 = 0x40
	rsv2 = 0x20
	rsv3 = 0x10
)

const (
	maxHeaderSize       = 14  // 2 + 8 (64-bit length) + 4 (mask key)
	maxControlPayload   = 125 // RFC 6455 §5.5
	maxCloseReasonBytes = maxControlPayload - 2
)

// header is a decoded frame header.
type header struct {
	fin    bool
	rsv    byte // the RSV bits, in their wire positions (rsv1|rsv2|rsv3)
	op     opcode
	masked bool
	key    [4]byte // masking key, when masked
	length int64   // payload length, never negative
}

// headerSize returns the size of the header whose second byte is b1.
func headerSize(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// parseHeader decodes the header at the start of b. It returns the header
// size, or 0 when b does not yet hold the whole header. Encodings that
// RFC 6455 §5.2 forbids are errors: a 64-bit length with its most significant
// bit set ("the most significant bit MUST be 0"), and lengths not in their
// minimal form ("the minimal number of bytes MUST be used to encode the
// length").
func parseHeader(b []byte) (h header, n int, err error) {
	n, err = h.parse(b)
	return h, n, err
}

// parse is parseHeader, decoding into h: a caller deep on the stack
// (startBufferedFrameLocked, under the decoder) keeps one header on its
// frame rather than copies of a returned one.
func (h *header) parse(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	n := headerSize(b[1])
	if len(b) < n {
		return 0, nil
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & (rsv1 | rsv2 | rsv3)
	h.op = opcode(b[0] & 0x0F)
	h.masked = b[1]&0x80 != 0
	p := 2
	switch l := b[1] & 0x7F; l {
	case 126:
		h.length = int64(binary.BigEndian.Uint16(b[2:]))
		p += 2
		if h.length < 126 {
			return n, protocolErr(StatusProtocolError, "frame length not minimally encoded")
		}
	case 127:
		u := binary.BigEndian.Uint64(b[2:])
		p += 8
		if u > math.MaxInt64 {
			return n, protocolErr(StatusProtocolError, "frame length has its most significant bit set")
		}
		if u <= math.MaxUint16 {
			return n, protocolErr(StatusProtocolError, "frame length not minimally encoded")
		}
		h.length = int64(u)
	default:
		h.length = int64(l)
	}
	if h.masked {
		copy(h.key[:], b[p:p+4])
	}
	return n, nil
}

// size returns the encoded size of h.
func (h header) size() int {
	n := 2
	switch {
	case h.length > 0xFFFF:
		n += 8
	case h.length > 125:
		n += 2
	}
	if h.masked {
		n += 4
	}
	return n
}

// appendHeader appends the encoding of h to b, in the minimal length form.
func appendHeader(b []byte, h header) []byte {
	b0 := byte(h.op) | h.rsv
	if h.fin {
		b0 |= 0x80
	}
	var b1 byte
	if h.masked {
		b1 = 0x80
	}
	switch {
	case h.length <= 125:
		b = append(b, b0, b1|byte(h.length))
	case h.length <= math.MaxUint16:
		b = append(b, b0, b1|126)
		b = binary.BigEndian.AppendUint16(b, uint16(h.length))
	default:
		b = append(b, b0, b1|127)
		b = binary.BigEndian.AppendUint64(b, uint64(h.length))
	}
	if h.masked {
		b = append(b, h.key[:]...)
	}
	return b
}

// readState is what checkHeader needs to know of the connection.
type readState struct {
	client    bool // we are the client: frames must arrive unmasked; never changes, so Conn reads it without readMu
	rsvOK     byte // RSV bits a negotiated extension gave meaning to (first data frame only)
	inMessage bool // a fragmented data message has started and not finished
}

// checkHeader enforces the rules of RFC 6455 §5 that a header alone can
// break. A violation is a *ProtocolError with StatusProtocolError: the
// connection must be failed.
func checkHeader(h header, s readState) error {
	// §5.2: "RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is
	// negotiated that defines meanings for non-zero values. If a nonzero
	// value is received and none of the negotiated extensions defines the
	// meaning of such a nonzero value, the receiving endpoint MUST _Fail the
	// WebSocket Connection_." RFC 7692 §6 gives RSV1 a meaning only on the
	// first frame of a data message.
	if h.rsv != 0 {
		if h.rsv&^s.rsvOK != 0 || h.op.isControl() || h.op == opContinuation {
			return protocolErr(StatusProtocolError, "reserved bits set without an extension that defines them")
		}
	}

	// §5.2: "If an unknown opcode is received, the receiving endpoint MUST
	// _Fail the WebSocket Connection_." (%x3-7 and %xB-F are reserved.)
	switch h.op {
	case opContinuation, opText, opBinary, opClose, opPing, opPong:
	default:
		return protocolErr(StatusProtocolError, h.op.String()+" received")
	}

	if h.op.isControl() {
		// §5.5: "All control frames MUST have a payload length of 125 bytes
		// or less and MUST NOT be fragmented."
		if !h.fin {
			return protocolErr(StatusProtocolError, "fragmented "+h.op.String()+" frame")
		}
		if h.length > maxControlPayload {
			return protocolErr(StatusProtocolError, h.op.String()+" frame payload over 125 bytes")
		}
	}

	// §5.1: "The server MUST close the connection upon receiving a frame
	// that is not masked." and "A client MUST close a connection if it
	// detects a masked frame."
	if s.client && h.masked {
		return protocolErr(StatusProtocolError, "masked frame from the server")
	}
	if !s.client && !h.masked {
		return protocolErr(StatusProtocolError, "unmasked frame from the client")
	}

	// §5.4: "A fragmented message consists of a single frame with the FIN
	// bit clear and an opcode other than 0, followed by zero or more frames
	// with the FIN bit clear and the opcode set to 0, and terminated by a
	// single frame with the FIN bit set and an opcode of 0." and "The
	// fragments of one message MUST NOT be interleaved between the fragments
	// of another message unless an extension has been negotiated that can
	// interpret the interleaving."
	switch h.op {
	case opContinuation:
		if !s.inMessage {
			return protocolErr(StatusProtocolError, "continuation frame outside a fragmented message")
		}
	case opText, opBinary:
		if s.inMessage {
			return protocolErr(StatusProtocolError, "new data frame inside a fragmented message")
		}
	}
	return nil
}

// appendFrame appends the frame h with payload p to b, masked if h is.
func appendFrame(b []byte, h header, p []byte) []byte {
	h.length = int64(len(p))
	b = appendHeader(b, h)
	n := len(b)
	b = append(b, p...)
	if h.masked {
		maskBytes(h.key, 0, b[n:])
	}
	return b
}
