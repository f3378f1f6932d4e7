package websocket

import (
	stdflate "compress/flate"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
)

// CompressionMode selects permessage-deflate (RFC 7692), negotiated in the
// opening handshake when both sides want it.
type CompressionMode int

const (
	// CompressionDisabled negotiates no compression (the default).
	CompressionDisabled CompressionMode = iota
	// CompressionNoContextTakeover compresses each message on its own, in
	// both directions: no compression state outlives a message, so an
	// idle connection holds none.
	CompressionNoContextTakeover
	// CompressionContextTakeover keeps each direction's LZ77 window across
	// messages, as far as the peer allows: small, similar messages shrink
	// much better, at the cost of a window per direction per connection
	// (2^CompressionWindowBits bytes each).
	CompressionContextTakeover
)

// MarshalText returns the mode's short name: off, no-takeover or takeover.
func (m CompressionMode) MarshalText() ([]byte, error) {
	switch m {
	case CompressionDisabled:
		return []byte("off"), nil
	case CompressionNoContextTakeover:
		return []byte("no-takeover"), nil
	case CompressionContextTakeover:
		return []byte("takeover"), nil
	}
	return nil, fmt.Errorf("websocket: unknown compression mode %d", int(m))
}

// UnmarshalText parses a short name, so that a mode can come from a flag
// (flag.TextVar) or a configuration file.
func (m *CompressionMode) UnmarshalText(b []byte) error {
	switch string(b) {
	case "off":
		*m = CompressionDisabled
	case "no-takeover":
		*m = CompressionNoContextTakeover
	case "takeover":
		*m = CompressionContextTakeover
	default:
		return fmt.Errorf("websocket: compression mode %q is not off, no-takeover or takeover", b)
	}
	return nil
}

func (m CompressionMode) String() string {
	switch m {
	case CompressionDisabled:
		return "disabled"
	case CompressionNoContextTakeover:
		return "no context takeover"
	case CompressionContextTakeover:
		return "context takeover"
	}
	return "CompressionMode(" + strconv.Itoa(int(m)) + ")"
}

const (
	defaultCompressionThreshold = 128
	minWindowBits               = flate.MinWindowBits
	maxWindowBits               = flate.MaxWindowBits
)

// compression is the compression a side asks for, from its options.
type compression struct {
	mode      CompressionMode
	threshold int // smallest message sent compressed
	bits      int // largest window, ours and, where the peer lets us, the peer's
}

func newCompression(mode CompressionMode, threshold, bits int) (compression, error) {
	c := compression{mode: mode, threshold: threshold, bits: bits}
	switch mode {
	case CompressionDisabled, CompressionNoContextTakeover, CompressionContextTakeover:
	default:
		return c, fmt.Errorf("websocket: unknown compression mode %d", int(mode))
	}
	if c.threshold <= 0 {
		c.threshold = defaultCompressionThreshold
	}
	switch {
	case c.bits == 0:
		c.bits = maxWindowBits
	case c.bits < minWindowBits || c.bits > maxWindowBits:
		return c, fmt.Errorf("websocket: compression window bits %d not in 8..15", bits)
	}
	return c, nil
}

// deflateParams is what a permessage-deflate negotiation settled, from our
// side: how we compress, and how the peer does.
type deflateParams struct {
	threshold    int
	sendTakeover bool // our compressor keeps its window across messages
	sendBits     int  // our compressor's window is 2^sendBits
	recvTakeover bool // the peer's compressor may refer to earlier messages
	recvBits     int  // the peer's compressor's window is at most 2^recvBits
}

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []extensionParam
}

type extensionParam struct {
	name     string
	value    string
	hasValue bool
}

// parseExtensions parses every Sec-WebSocket-Extensions line of h by the
// grammar of RFC 6455 §9.1:
//
//	extension-list = 1#extension
//	extension = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
//
// A quoted value, once unescaped, must be a token too.
func parseExtensions(h http.Header) ([]extension, error) {
	var exts []extension
	for _, line := range h.Values("Sec-WebSocket-Extensions") {
		p := extParser{s: line}
		for {
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() == ',' { // empty list elements are allowed
				p.i++
				continue
			}
			name, ok := p.token()
			if !ok {
				return nil, p.errorf("extension name expected")
			}
			ext := extension{name: name}
			for {
				p.skipSpace()
				if p.done() || p.peek() == ',' {
					break
				}
				if p.peek() != ';' {
					return nil, p.errorf("';' or ',' expected")
				}
				p.i++
				p.skipSpace()
				var prm extensionParam
				if prm.name, ok = p.token(); !ok {
					return nil, p.errorf("parameter name expected")
				}
				p.skipSpace()
				if !p.done() && p.peek() == '=' {
					p.i++
					p.skipSpace()
					if prm.value, ok = p.value(); !ok {
						return nil, p.errorf("parameter value expected")
					}
					prm.hasValue = true
				}
				ext.params = append(ext.params, prm)
			}
			exts = append(exts, ext)
		}
	}
	return exts, nil
}

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }

func (p *extParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *extParser) token() (string, bool) {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// value reads a token or a quoted string whose content is a token.
func (p *extParser) value() (string, bool) {
	if p.done() || p.peek() != '"' {
		return p.token()
	}
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			v := b.String()
			return v, validHeaderName(v)
		case c == '\\' && !p.done():
			c = p.s[p.i]
			p.i++
		}
		b.WriteByte(c)
	}
	return "", false // unterminated
}

func (p *extParser) errorf(msg string) error {
	return fmt.Errorf("websocket: Sec-WebSocket-Extensions %q: %s at byte %d", p.s, msg, p.i)
}

// deflateOffer is a parsed permessage-deflate offer or response.
type deflateOffer struct {
	serverNoTakeover bool
	clientNoTakeover bool
	serverBits       int  // server_max_window_bits, 0 when absent
	clientBits       int  // client_max_window_bits value, 0 when absent or without one
	clientBitsSeen   bool // client_max_window_bits present
}

// parseDeflateParams reads the parameters of a permessage-deflate element
// (RFC 7692 §7.1). Unknown, repeated or malformed parameters are errors.
func parseDeflateParams(params []extensionParam) (deflateOffer, error) {
	var o deflateOffer
	seen := make(map[string]bool, len(params))
	for _, prm := range params {
		name := strings.ToLower(prm.name)
		if seen[name] {
			return o, fmt.Errorf("parameter %s repeated", prm.name)
		}
		seen[name] = true
		switch name {
		case "server_no_context_takeover", "client_no_context_takeover":
			if prm.hasValue {
				return o, fmt.Errorf("parameter %s takes no value", prm.name)
			}
			if name == "server_no_context_takeover" {
				o.serverNoTakeover = true
			} else {
				o.clientNoTakeover = true
			}
		case "server_max_window_bits":
			bits, err := windowBits(prm)
			if err != nil {
				return o, err
			}
			o.serverBits = bits
		case "client_max_window_bits":
			o.clientBitsSeen = true
			if prm.hasValue {
				bits, err := windowBits(prm)
				if err != nil {
					return o, err
				}
				o.clientBits = bits
			}
		default:
			return o, fmt.Errorf("unknown parameter %s", prm.name)
		}
	}
	return o, nil
}

// windowBits parses a window size parameter: RFC 7692 §7.1.2 wants a
// decimal integer from 8 to 15 without leading zeros.
func windowBits(prm extensionParam) (int, error) {
	v := prm.value
	if !prm.hasValue || len(v) == 0 || len(v) > 2 || v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("parameter %s=%q is not a window size", prm.name, v)
	}
	bits, _ := strconv.Atoi(v)
	if bits < minWindowBits || bits > maxWindowBits {
		return 0, fmt.Errorf("parameter %s=%d is not in 8..15", prm.name, bits)
	}
	return bits, nil
}

// accept picks the first permessage-deflate offer of a request that we
// can honour (RFC 7692 §5.1) and returns the parameters and the response
// element, or nil when compression is off or every offer is declined.
// Offers with unknown, repeated or out-of-range parameters are declined.
func (c compression) accept(h http.Header) (*deflateParams, string) {
	if c.mode == CompressionDisabled {
		return nil, ""
	}
	exts, err := parseExtensions(h)
	if err != nil {
		return nil, ""
	}
	for _, ext := range exts {
		if !strings.EqualFold(ext.name, "permessage-deflate") {
			continue
		}
		o, err := parseDeflateParams(ext.params)
		if err != nil {
			continue
		}
		p := &deflateParams{threshold: c.threshold, sendBits: c.bits, recvBits: maxWindowBits}
		resp := "permessage-deflate"
		// §7.1.1.1: an offer with server_no_context_takeover is accepted
		// only by including it in the response; we may include it anyway.
		p.sendTakeover = c.mode == CompressionContextTakeover && !o.serverNoTakeover
		if !p.sendTakeover {
			resp += "; server_no_context_takeover"
		}
		// §7.1.1.2: the server may ask the client not to take over its
		// context, whatever the offer said.
		p.recvTakeover = c.mode == CompressionContextTakeover && !o.clientNoTakeover
		if !p.recvTakeover {
			resp += "; client_no_context_takeover"
		}
		// §7.1.2.1: the response names server_max_window_bits with the
		// offer's value or a smaller one, and may name it unasked. Our
		// compressor keeps any window from 8 to 15 bits.
		if o.serverBits > 0 {
			p.sendBits = min(p.sendBits, o.serverBits)
		}
		if o.serverBits > 0 || p.sendBits < maxWindowBits {
			resp += "; server_max_window_bits=" + strconv.Itoa(p.sendBits)
		}
		// §7.1.2.2: client_max_window_bits may be answered only when
		// offered, with the offer's value or a smaller one; it limits the
		// window our decompressor has to keep.
		if o.clientBitsSeen {
			p.recvBits = c.bits
			if o.clientBits > 0 {
				p.recvBits = min(p.recvBits, o.clientBits)
			}
			if p.recvBits < maxWindowBits {
				resp += "; client_max_window_bits=" + strconv.Itoa(p.recvBits)
			}
		}
		return p, resp
	}
	return nil, ""
}

// offer is the Sec-WebSocket-Extensions value a client sends: it asks for
// what its mode needs, and declares (client_max_window_bits) that it can
// keep any window the server sets for it.
func (c compression) offer() string {
	if c.mode == CompressionDisabled {
		return ""
	}
	s := "permessage-deflate"
	if c.mode == CompressionNoContextTakeover {
		s += "; server_no_context_takeover; client_no_context_takeover"
	}
	if c.bits < maxWindowBits {
		s += "; server_max_window_bits=" + strconv.Itoa(c.bits)
	}
	return s + "; client_max_window_bits"
}

// check validates the server's answer to offer (RFC 7692 §5.1, §7.1) and
// returns what it settled, or nil when the server declined.
func (c compression) check(h http.Header) (*deflateParams, error) {
	exts, err := parseExtensions(h)
	if err != nil {
		return nil, err
	}
	switch {
	case len(exts) == 0:
		return nil, nil
	case c.mode == CompressionDisabled:
		return nil, fmt.Errorf("server accepted extension %q, which was not offered", exts[0].name)
	case len(exts) > 1:
		return nil, fmt.Errorf("server accepted %d extensions, only permessage-deflate was offered", len(exts))
	case !strings.EqualFold(exts[0].name, "permessage-deflate"):
		return nil, fmt.Errorf("server accepted extension %q, which was not offered", exts[0].name)
	}
	o, err := parseDeflateParams(exts[0].params)
	if err != nil {
		return nil, fmt.Errorf("server's permessage-deflate response: %v", err)
	}
	p := &deflateParams{threshold: c.threshold, sendBits: c.bits, recvBits: maxWindowBits}
	noTakeover := c.mode == CompressionNoContextTakeover
	if noTakeover && !o.serverNoTakeover {
		return nil, errors.New("server's permessage-deflate response lacks server_no_context_takeover, which was offered")
	}
	p.recvTakeover = !o.serverNoTakeover
	p.sendTakeover = !noTakeover && !o.clientNoTakeover
	if c.bits < maxWindowBits {
		if o.serverBits == 0 {
			return nil, fmt.Errorf("server's permessage-deflate response lacks server_max_window_bits, offered as %d", c.bits)
		}
		if o.serverBits > c.bits {
			return nil, fmt.Errorf("server's permessage-deflate response sets server_max_window_bits=%d, above the %d offered", o.serverBits, c.bits)
		}
	}
	if o.serverBits > 0 {
		p.recvBits = o.serverBits
	}
	if o.clientBitsSeen {
		if o.clientBits == 0 {
			return nil, errors.New("server's permessage-deflate response has client_max_window_bits without a value")
		}
		p.sendBits = min(p.sendBits, o.clientBits)
	}
	return p, nil
}

// compressedLimit bounds the compressed size of a message whose inflated
// size the read limit bounds: DEFLATE's stored blocks grow incompressible
// data by 5 bytes in 65535, so this leaves ample room for any honest
// message.
func compressedLimit(limit int64) int64 {
	if limit > math.MaxInt64/2 {
		return limit
	}
	return limit + limit/256 + 1024
}

var flateReaderPool sync.Pool

// inflater holds the state of the peer's compression between messages.
// It is guarded by the read lock.
type inflater struct {
	fr     io.ReadCloser // compress/flate's reader, borrowed for a message
	src    inflateSource
	out    int64  // bytes the current message inflated to so far
	window []byte // ring of the last 2^recvBits bytes inflated, with context takeover
	wpos   int    // where the ring's next byte goes
	wfull  bool   // the ring has wrapped
}

// inflateSource feeds compress/flate the raw payload of the message being
// read, frame after frame, then the 00 00 ff ff tail that the sender
// stripped (RFC 7692 §7.2.2), then io.EOF. It is an io.ByteReader, so that
// flate reads no further than it needs.
type inflateSource struct {
	c    *Conn
	ctx  context.Context
	tail int   // bytes of flate.FlushTail handed out
	err  error // the error that stopped a frame read, already handled
}

func (s *inflateSource) Read(p []byte) (int, error) {
	c := s.c
	for c.frameLeft == 0 {
		if !c.frame.fin {
			if err := c.nextFrameLocked(s.ctx); err != nil {
				s.err = err
				return 0, err
			}
			continue
		}
		if s.tail == len(flate.FlushTail) {
			return 0, io.EOF
		}
		n := copy(p, flate.FlushTail[s.tail:])
		s.tail += n
		return n, nil
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := c.readRawLocked(s.ctx, p)
	if err != nil {
		s.err = err
	}
	return n, err
}

func (s *inflateSource) ReadByte() (byte, error) {
	c := s.c
	if c.frameLeft > 0 && !c.rb.isEmpty() {
		b := c.rb.buf[c.rb.r]
		c.rb.r++
		if c.frame.masked {
			b ^= c.frame.key[c.maskPos]
			c.maskPos = (c.maskPos + 1) & 3
		}
		c.frameLeft--
		return b, nil
	}
	var one [1]byte
	for {
		n, err := s.Read(one[:])
		if n == 1 {
			return one[0], nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// inflateLocked reads the next inflated bytes of the current message into
// p, returning io.EOF at its end. The read limit and the UTF-8 check apply
// to the inflated bytes as they come out.
func (c *Conn) inflateLocked(ctx context.Context, p []byte) (int, error) {
	in := c.inflate
	if in.fr == nil {
		c.startInflateLocked()
	}
	if len(p) == 0 {
		return 0, nil
	}
	limit := c.readLimit.Load()
	if limit >= 0 && int64(len(p)) > limit-in.out+1 {
		p = p[:limit-in.out+1] // one byte past the limit shows it crossed
	}
	in.src.ctx = ctx
	n, err := in.fr.Read(p)
	in.src.ctx = nil
	if n > 0 {
		in.out += int64(n)
		if limit >= 0 && in.out > limit {
			c.endInflateLocked()
			pe := protocolErr(StatusMessageTooBig, fmt.Sprintf("message inflates past the read limit of %d bytes", limit))
			pe.err = ErrMessageTooBig
			return 0, c.failLocked(pe)
		}
		if err := c.checkTextLocked(p[:n]); err != nil {
			c.endInflateLocked()
			return 0, err
		}
		if c.deflate.recvTakeover {
			in.remember(p[:n])
		}
	}
	switch {
	case err == nil:
		return n, nil
	case in.src.err != nil:
		// Reading a frame failed; the connection was failed or closed.
		err = in.src.err
		c.endInflateLocked()
		return 0, err
	case err == io.EOF || (err == io.ErrUnexpectedEOF && in.src.tail == len(flate.FlushTail)):
		// The stream ended where the message did (or with a final block,
		// after which what is left of the message is dropped).
		if err == io.EOF {
			for c.frameLeft > 0 || !c.frame.fin {
				var scratch [256]byte
				if _, err := in.src.Read(scratch[:]); err != nil {
					c.endInflateLocked()
					return 0, err
				}
			}
		}
		c.endInflateLocked()
		if err := c.endMessageLocked(); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	default:
		c.endInflateLocked()
		pe := protocolErr(StatusInvalidFramePayloadData, "invalid compressed data: "+err.Error())
		pe.err = err
		return 0, c.failLocked(pe)
	}
}

// startInflateLocked borrows a flate reader for a new message, primed with
// the window of earlier messages under context takeover.
func (c *Conn) startInflateLocked() {
	in := c.inflate
	in.src.tail, in.src.err, in.out = 0, nil, 0
	var dict []byte
	var bp *[]byte
	if c.deflate.recvTakeover && (in.wpos > 0 || in.wfull) {
		if !in.wfull {
			dict = in.window[:in.wpos]
		} else {
			// Lay the ring out in order.
			bp = getWriteBuf(len(in.window))
			dict = (*bp)[:0]
			dict = append(dict, in.window[in.wpos:]...)
			dict = append(dict, in.window[:in.wpos]...)
		}
	}
	if fr, ok := flateReaderPool.Get().(io.ReadCloser); ok {
		fr.(stdflate.Resetter).Reset(&in.src, dict)
		in.fr = fr
	} else {
		in.fr = stdflate.NewReaderDict(&in.src, dict)
	}
	if bp != nil {
		putWriteBuf(bp)
	}
}

// idleSource is what pooled flate readers read from, so that they keep no
// Conn alive. Nothing reads it.
var idleSource = &inflateSource{}

// endInflateLocked returns the flate reader of a message that ended.
func (c *Conn) endInflateLocked() {
	in := c.inflate
	if in.fr != nil {
		in.fr.(stdflate.Resetter).Reset(idleSource, nil)
		flateReaderPool.Put(in.fr)
		in.fr = nil
	}
}

// remember adds inflated bytes to the window ring.
func (in *inflater) remember(p []byte) {
	if in.window == nil {
		in.window = make([]byte, 1<<in.src.c.deflate.recvBits)
	}
	w := len(in.window)
	if len(p) >= w {
		copy(in.window, p[len(p)-w:])
		in.wpos, in.wfull = 0, true
		return
	}
	n := copy(in.window[in.wpos:], p)
	if n < len(p) {
		copy(in.window, p[n:])
		in.wfull = true
	}
	in.wpos += len(p)
	if in.wpos >= w {
		in.wpos -= w
		in.wfull = true
	}
}

// deflaterPools hold deflaters without history, one pool per window size,
// for connections that compress without context takeover. A pooled
// deflater keeps its scratch, so that the next message pays nothing to
// set up.
var deflaterPools [maxWindowBits - minWindowBits + 1]sync.Pool

// deflateIdleDelay is how long a connection with context takeover goes
// without sending a compressed message before its compressor lets go of
// everything but its window. Setting up again costs a few microseconds
// and more, so a busy connection keeps it.
const deflateIdleDelay = 100 * time.Millisecond

// takeDeflater returns the compressor for a message: the connection's own
// with context takeover, a pooled one without. The caller holds msgMu.
func (c *Conn) takeDeflater() *flate.Writer {
	p := c.deflate
	if c.def != nil {
		return c.def
	}
	if p.sendTakeover {
		c.def = flate.NewWriter(p.sendBits)
		return c.def
	}
	if d, ok := deflaterPools[p.sendBits-minWindowBits].Get().(*flate.Writer); ok {
		return d
	}
	return flate.NewWriter(p.sendBits)
}

// releaseDeflater puts away the compressor of a message that ended. The
// caller holds msgMu.
func (c *Conn) releaseDeflater(d *flate.Writer) {
	if !c.deflate.sendTakeover {
		d.Reset()
		deflaterPools[c.deflate.sendBits-minWindowBits].Put(d)
		return
	}
	if c.defTimer == nil {
		c.defTimer = time.AfterFunc(deflateIdleDelay, c.idleDeflater)
	} else {
		c.defTimer.Reset(deflateIdleDelay)
	}
}

// idleDeflater shrinks the compressor of a connection that has gone quiet
// to its window. If a message is being written, its end rearms the timer.
func (c *Conn) idleDeflater() {
	if !c.msgMu.tryLock() {
		return
	}
	if c.def != nil {
		c.def.Idle()
	}
	c.msgMu.unlock()
}
