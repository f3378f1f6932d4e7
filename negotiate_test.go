package websocket

// permessage-deflate negotiation fed arbitrary offers and responses:
// FuzzNegotiate.

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// fuzzCompressionConfig makes the compression options of one side from two
// fuzz bytes: the mode, and the window bits (0 for the default, or 8 to
// 15).
func fuzzCompressionConfig(mode, bits byte) compression {
	b := int(bits % 9)
	if b > 0 {
		b += 7
	}
	c, err := newCompression(CompressionMode(mode%3), 0, b)
	if err != nil {
		panic(err) // every mode and window size made here is valid
	}
	return c
}

// fuzzDeflateParams restates RFC 7692 §7.1: the parameters of a
// permessage-deflate element, if each is one of the four the RFC defines,
// named once, with a value where it must have one and none where it must
// not, and a window size a decimal from 8 to 15 without leading zeros
// (§7.1.2).
func fuzzDeflateParams(params []extensionParam) (o deflateOffer, ok bool) {
	seen := map[string]bool{}
	for _, prm := range params {
		name := strings.ToLower(prm.name)
		if seen[name] {
			return o, false
		}
		seen[name] = true
		bits := 0
		if prm.hasValue {
			if n, err := strconv.Atoi(prm.value); err == nil && strconv.Itoa(n) == prm.value && n >= 8 && n <= 15 {
				bits = n
			} else {
				bits = -1
			}
		}
		switch {
		case name == "server_no_context_takeover" && !prm.hasValue:
			o.serverNoTakeover = true
		case name == "client_no_context_takeover" && !prm.hasValue:
			o.clientNoTakeover = true
		case name == "server_max_window_bits" && bits > 0:
			o.serverBits = bits
		case name == "client_max_window_bits" && bits >= 0:
			o.clientBitsSeen, o.clientBits = true, bits
		default:
			return o, false
		}
	}
	return o, true
}

// fuzzAcceptable returns the first permessage-deflate offer of h that a
// server can accept, by fuzzDeflateParams.
func fuzzAcceptable(h http.Header) (deflateOffer, bool) {
	exts, err := parseExtensions(h)
	if err != nil {
		return deflateOffer{}, false
	}
	for _, ext := range exts {
		if o, ok := fuzzDeflateParams(ext.params); ok && strings.EqualFold(ext.name, "permessage-deflate") {
			return o, true
		}
	}
	return deflateOffer{}, false
}

// fuzzAgree checks that what a server settled (srv) and what a client
// took from its response (cl) let each side inflate what the other
// sends: the client inflates with the window the server compresses with,
// and keeps it between messages if the server's compressor does; the
// server's inflater keeps a window at least as large as the client's
// compressor uses, between messages whenever the client's compressor
// keeps it.
func fuzzAgree(srv, cl *deflateParams) error {
	if cl.recvTakeover != srv.sendTakeover || cl.recvBits != srv.sendBits ||
		cl.sendTakeover && !srv.recvTakeover || cl.sendBits > srv.recvBits {
		return fmt.Errorf("server settled %+v, client %+v", *srv, *cl)
	}
	return nil
}

// fuzzRespOffer parses a response element the server made, which must be
// one permessage-deflate element with parameters RFC 7692 allows.
func fuzzRespOffer(resp string) (deflateOffer, error) {
	exts, err := parseExtensions(http.Header{"Sec-Websocket-Extensions": {resp}})
	if err != nil || len(exts) != 1 || exts[0].name != "permessage-deflate" || !validHeaderValue(resp) {
		return deflateOffer{}, fmt.Errorf("response %q is not one permessage-deflate element: %v", resp, err)
	}
	r, ok := fuzzDeflateParams(exts[0].params)
	if !ok {
		return r, fmt.Errorf("response %q has parameters RFC 7692 does not allow", resp)
	}
	return r, nil
}

// FuzzNegotiate checks both ends of a permessage-deflate negotiation
// (RFC 7692 §5, §7.1). The server (options from srvMode and srvBits)
// answers offers, newline-separated header lines in raw, without
// panicking: it accepts the first offer fuzzDeflateParams allows, and
// only that; its response honours that offer and its own options, and
// says exactly what it settled; and a client that could have made the
// offer (one that asked for the server_no_context_takeover and
// server_max_window_bits it holds) accepts the response with settings
// that agree with the server's (fuzzAgree). A client (options from
// cliMode and cliBits) has its own offer accepted by that server the
// same way, and never panics on raw taken as a response, accepting only
// one that honours its offer.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=08, permessage-deflate; client_max_window_bits=10",
		"permessage-deflate; x=1, Permessage-Deflate; Server_Max_Window_Bits=\"12\"",
		"permessage-deflate; client_max_window_bits; client_max_window_bits=9, permessage-deflate",
		"x-webkit-deflate-frame\npermessage-deflate; server_no_context_takeover=1, permessage-deflate; server_max_window_bits=16",
		"permessage-deflate; server_max_window_bits",
	} {
		for _, mode := range []byte{0, 1, 2} {
			f.Add(s, mode, byte(mode*4), byte(2-mode), byte(mode*3))
		}
	}
	f.Fuzz(func(t *testing.T, raw string, srvMode, srvBits, cliMode, cliBits byte) {
		srv := fuzzCompressionConfig(srvMode, srvBits)
		h := http.Header{"Sec-Websocket-Extensions": strings.Split(raw, "\n")}
		p, resp := srv.accept(h)
		o, acceptable := fuzzAcceptable(h)
		switch {
		case (p == nil) != (resp == ""):
			t.Fatalf("accept returned %+v and response %q", p, resp)
		case srv.mode == CompressionDisabled || !acceptable:
			if p != nil {
				t.Fatalf("server %+v accepted %q (acceptable=%v) with %q", srv, raw, acceptable, resp)
			}
		case p == nil:
			t.Fatalf("server %+v declined %q, whose offer %+v it can accept", srv, raw, o)
		default:
			if err := fuzzCheckAccepted(srv, o, p, resp); err != nil {
				t.Fatalf("server %+v, offer %q: %v", srv, raw, err)
			}
		}

		cl := fuzzCompressionConfig(cliMode, cliBits)
		offer := http.Header{"Sec-Websocket-Extensions": {cl.offer()}}
		if cl.mode == CompressionDisabled {
			offer = http.Header{}
		}
		p, resp = srv.accept(offer)
		if (p != nil) != (srv.mode != CompressionDisabled && cl.mode != CompressionDisabled) {
			t.Fatalf("server %+v answered client %+v's offer %q with %q", srv, cl, offer, resp)
		}
		answer := http.Header{}
		if resp != "" {
			answer.Set("Sec-WebSocket-Extensions", resp)
		}
		q, err := cl.check(answer)
		switch {
		case err != nil || (q == nil) != (p == nil):
			t.Fatalf("client %+v took the answer %q to its offer as %+v, %v", cl, resp, q, err)
		case p != nil:
			if err := fuzzAgree(p, q); err != nil {
				t.Fatalf("client %+v, server %+v, response %q: %v", cl, srv, resp, err)
			}
		}

		q, err = cl.check(h)
		if q != nil {
			if err := fuzzCheckHonoured(cl, q); err != nil {
				t.Fatalf("client %+v took %q as %+v: %v", cl, raw, q, err)
			}
		}
		if err != nil && q != nil {
			t.Fatalf("client check returned %+v and %v", q, err)
		}
	})
}

// fuzzCheckAccepted checks a server's acceptance p, resp of the offer o:
// the response honours the offer (RFC 7692 §7.1.1.1, §7.1.2.1, §7.1.2.2)
// and the server's options (but for the 8-bit window asked of a client
// only when it names 8, as zlib cannot compress with one), p is what the
// response says, and a client
// that could have made the offer accepts the response in agreement.
func fuzzCheckAccepted(srv compression, o deflateOffer, p *deflateParams, resp string) error {
	r, err := fuzzRespOffer(resp)
	if err != nil {
		return err
	}
	bitsOr15 := func(b int) int {
		if b == 0 {
			return maxWindowBits
		}
		return b
	}
	switch {
	case o.serverNoTakeover && !r.serverNoTakeover:
		return fmt.Errorf("response %q lacks the server_no_context_takeover offered", resp)
	case o.serverBits > 0 && (r.serverBits == 0 || r.serverBits > o.serverBits):
		return fmt.Errorf("response %q does not keep server_max_window_bits to the %d offered", resp, o.serverBits)
	case !o.clientBitsSeen && r.clientBitsSeen:
		return fmt.Errorf("response %q has client_max_window_bits, not offered", resp)
	case r.clientBitsSeen && (r.clientBits == 0 || o.clientBits > 0 && r.clientBits > o.clientBits):
		return fmt.Errorf("response %q does not keep client_max_window_bits to the %d offered", resp, o.clientBits)
	case p.sendTakeover == r.serverNoTakeover || p.recvTakeover == r.clientNoTakeover ||
		p.sendBits != bitsOr15(r.serverBits) || p.recvBits != bitsOr15(r.clientBits):
		return fmt.Errorf("settled %+v, but the response says %q", *p, resp)
	case p.sendBits > srv.bits || p.recvBits > max(srv.bits, minWindowBits+1) && o.clientBitsSeen ||
		p.recvBits == minWindowBits && o.clientBits != minWindowBits ||
		srv.mode == CompressionNoContextTakeover && (p.sendTakeover || p.recvTakeover):
		return fmt.Errorf("settled %+v, beyond the server's options", *p)
	case p.threshold != srv.threshold:
		return fmt.Errorf("settled threshold %d, want %d", p.threshold, srv.threshold)
	}
	mode := CompressionContextTakeover
	if o.serverNoTakeover {
		mode = CompressionNoContextTakeover
	}
	cl, err := newCompression(mode, 0, o.serverBits)
	if err != nil {
		return err
	}
	q, err := cl.check(http.Header{"Sec-Websocket-Extensions": {resp}})
	if err != nil || q == nil {
		return fmt.Errorf("a client %+v that could have made the offer refuses the response %q: %v", cl, resp, err)
	}
	return fuzzAgree(p, q)
}

// fuzzCheckHonoured checks what client cl settled from a response: it
// never inflates with a window larger than it asked the server to keep to,
// nor compresses with one larger than its own options; without context
// takeover it keeps none either way.
func fuzzCheckHonoured(cl compression, q *deflateParams) error {
	switch {
	case q.recvBits > cl.bits || q.sendBits > cl.bits:
		return fmt.Errorf("windows of %d and %d bits, over the %d of its options", q.recvBits, q.sendBits, cl.bits)
	case cl.mode == CompressionNoContextTakeover && (q.recvTakeover || q.sendTakeover):
		return fmt.Errorf("context takeover without asking for it")
	case cl.mode == CompressionDisabled:
		return fmt.Errorf("compression without offering it")
	}
	return nil
}
