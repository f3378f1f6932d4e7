package websocket

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rfc6455/websocket/internal/flate"
)

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
// side: how we compress, and how the peer does; each connection has its
// own, which also holds its compressor between messages (so that a
// connection without compression has no room for one).
type deflateParams struct {
	threshold    int
	sendBits     int  // our compressor's window is 2^sendBits
	recvBits     int  // the peer's compressor's window is at most 2^recvBits
	sendTakeover bool // our compressor keeps its window across messages
	recvTakeover bool // the peer's compressor may refer to earlier messages

	def      *flate.Writer // the Conn's msgMu: our compressor, kept across messages with context takeover
	defTimer *time.Timer   // the Conn's msgMu: lets def shrink once the connection goes quiet
}

// deflateOffer is a parsed permessage-deflate offer or response.
type deflateOffer struct {
	serverNoTakeover bool
	clientNoTakeover bool
	serverBits       int  // server_max_window_bits, 0 when absent
	clientBits       int  // client_max_window_bits value, 0 when absent or without one
	clientBitsSeen   bool // client_max_window_bits present
}

// deflateParamNames are the parameters of permessage-deflate (RFC 7692
// §7.1), in lower case.
var deflateParamNames = [...]string{"server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits", "client_max_window_bits"}

// parseDeflateParams reads the parameters of a permessage-deflate element
// (RFC 7692 §7.1). Unknown, repeated or malformed parameters are errors.
func parseDeflateParams(params []extensionParam) (deflateOffer, error) {
	var o deflateOffer
	var seen [len(deflateParamNames)]bool
	for _, prm := range params {
		name := strings.ToLower(prm.name)
		i := slices.Index(deflateParamNames[:], name)
		if i < 0 {
			return o, fmt.Errorf("unknown parameter %s", quoted(prm.name))
		}
		if seen[i] {
			return o, fmt.Errorf("parameter %s repeated", prm.name)
		}
		seen[i] = true
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
		}
	}
	return o, nil
}

// windowBits parses a window size parameter: RFC 7692 §7.1.2 wants a
// decimal integer from 8 to 15 without leading zeros.
func windowBits(prm extensionParam) (int, error) {
	v := prm.value
	if !prm.hasValue || len(v) == 0 || len(v) > 2 || v[0] == '0' || strings.Trim(v, "0123456789") != "" {
		return 0, fmt.Errorf("parameter %s=%s is not a window size", prm.name, quoted(v))
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
			// zlib cannot compress with an 8-bit window: a client on it
			// told to keep to 8 bits uses 9, or fails (python-websockets
			// does). A client that names 8 itself can; any other is
			// asked for 9 bits at least, which costs our decompressor
			// 256 bytes more.
			if o.clientBits != minWindowBits {
				p.recvBits = max(p.recvBits, minWindowBits+1)
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
		return nil, fmt.Errorf("server accepted extension %s, which was not offered", quoted(exts[0].name))
	case len(exts) > 1:
		return nil, fmt.Errorf("server accepted %d extensions, only permessage-deflate was offered", len(exts))
	case !strings.EqualFold(exts[0].name, "permessage-deflate"):
		return nil, fmt.Errorf("server accepted extension %s, which was not offered", quoted(exts[0].name))
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
