// Package h2 is a minimal HTTP/2 client (RFC 9113) for WebSockets over
// HTTP/2 (RFC 8441): it opens streams with a header list of the caller's,
// typically an extended CONNECT, and carries their bytes both ways, with
// flow control, SETTINGS, PING, GOAWAY and RST_STREAM handled as the RFC
// asks. It accepts no pushed streams and sends no request of its own.
package h2

import (
	"encoding/binary"
	"fmt"
)

// Frame types (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePushPromise  = 0x5
	framePing         = 0x6
	frameGoAway       = 0x7
	frameWindowUpdate = 0x8
	frameContinuation = 0x9
)

// Frame flags.
const (
	flagEndStream  = 0x1 // DATA, HEADERS
	flagAck        = 0x1 // SETTINGS, PING
	flagEndHeaders = 0x4 // HEADERS, CONTINUATION
	flagPadded     = 0x8 // DATA, HEADERS
	flagPriority   = 0x20
)

// Settings (RFC 9113 §6.5.2, RFC 8441 §3).
const (
	settingHeaderTableSize       = 0x1
	settingEnablePush            = 0x2
	settingMaxConcurrentStreams  = 0x3
	settingInitialWindowSize     = 0x4
	settingMaxFrameSize          = 0x5
	settingMaxHeaderListSize     = 0x6
	settingEnableConnectProtocol = 0x8
)

const (
	headerLen       = 9
	defaultMaxFrame = 16384 // §4.2: SETTINGS_MAX_FRAME_SIZE's initial value
	maxFrameLimit   = 1<<24 - 1
	defaultWindow   = 65535 // §6.9.2: the initial flow-control window
	maxWindow       = 1<<31 - 1
	preface         = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
)

// ErrCode is an HTTP/2 error code (RFC 9113 §7).
type ErrCode uint32

const (
	ErrCodeNo                 ErrCode = 0x0
	ErrCodeProtocol           ErrCode = 0x1
	ErrCodeInternal           ErrCode = 0x2
	ErrCodeFlowControl        ErrCode = 0x3
	ErrCodeSettingsTimeout    ErrCode = 0x4
	ErrCodeStreamClosed       ErrCode = 0x5
	ErrCodeFrameSize          ErrCode = 0x6
	ErrCodeRefusedStream      ErrCode = 0x7
	ErrCodeCancel             ErrCode = 0x8
	ErrCodeCompression        ErrCode = 0x9
	ErrCodeConnect            ErrCode = 0xa
	ErrCodeEnhanceYourCalm    ErrCode = 0xb
	ErrCodeInadequateSecurity ErrCode = 0xc
	ErrCodeHTTP11Required     ErrCode = 0xd
)

var errCodeNames = [...]string{
	"NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
	"SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
	"CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
	"INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED",
}

func (c ErrCode) String() string {
	if int(c) < len(errCodeNames) {
		return errCodeNames[c]
	}
	return fmt.Sprintf("error code %#x", uint32(c))
}

// frameHeader is the 9-byte header of every frame (§4.1).
type frameHeader struct {
	length   uint32
	typ      uint8
	flags    uint8
	streamID uint32
}

func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:      b[3],
		flags:    b[4],
		streamID: binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1), // §4.1: the reserved bit is ignored
	}
}

func appendFrameHeader(dst []byte, length int, typ, flags uint8, streamID uint32) []byte {
	return append(dst, byte(length>>16), byte(length>>8), byte(length), typ, flags,
		byte(streamID>>24), byte(streamID>>16), byte(streamID>>8), byte(streamID))
}

// appendSettings appends a SETTINGS frame holding pairs of IDs and values.
func appendSettings(dst []byte, pairs ...uint32) []byte {
	dst = appendFrameHeader(dst, len(pairs)/2*6, frameSettings, 0, 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		dst = binary.BigEndian.AppendUint16(dst, uint16(pairs[i]))
		dst = binary.BigEndian.AppendUint32(dst, pairs[i+1])
	}
	return dst
}

func appendWindowUpdate(dst []byte, streamID, incr uint32) []byte {
	dst = appendFrameHeader(dst, 4, frameWindowUpdate, 0, streamID)
	return binary.BigEndian.AppendUint32(dst, incr)
}

func appendRSTStream(dst []byte, streamID uint32, code ErrCode) []byte {
	dst = appendFrameHeader(dst, 4, frameRSTStream, 0, streamID)
	return binary.BigEndian.AppendUint32(dst, uint32(code))
}

func appendGoAway(dst []byte, lastStreamID uint32, code ErrCode, debug string) []byte {
	dst = appendFrameHeader(dst, 8+len(debug), frameGoAway, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, lastStreamID)
	dst = binary.BigEndian.AppendUint32(dst, uint32(code))
	return append(dst, debug...)
}

// unpad strips the padding of a DATA or HEADERS frame (§6.1): the Pad
// Length byte first, the padding last.
func unpad(h frameHeader, p []byte) ([]byte, error) {
	if h.flags&flagPadded == 0 {
		return p, nil
	}
	if len(p) == 0 {
		return nil, connError(ErrCodeFrameSize, "padded frame without a Pad Length")
	}
	pad := int(p[0])
	p = p[1:]
	// §6.1: "If the length of the padding is the length of the frame
	// payload or greater, the recipient MUST treat this as a connection
	// error of type PROTOCOL_ERROR."
	if pad > len(p) {
		return nil, connError(ErrCodeProtocol, "padding longer than the frame")
	}
	return p[:len(p)-pad], nil
}
