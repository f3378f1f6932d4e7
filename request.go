package websocket

import (
	"net/http"
	"strings"
)

// IsUpgradeRequest reports whether r asks to open a WebSocket: over
// HTTP/1.1 a GET whose Connection header has the upgrade token and whose
// Upgrade header has websocket (RFC 6455 §4.1), over HTTP/2 an extended
// CONNECT whose :protocol is websocket (RFC 8441 §4). It lets one handler
// serve a page and its WebSocket at one address, whichever HTTP version
// the request came over, where a check of Upgrade alone misses every
// HTTP/2 request. It looks at nothing else: Accept may still refuse the
// request (a bad key, a version other than 13, a foreign origin), and
// refuses an extended CONNECT over HTTP/3 (RFC 9220), which this reports
// as asking for a WebSocket, with 505.
func IsUpgradeRequest(r *http.Request) bool {
	if r.ProtoMajor >= 2 {
		return r.Method == http.MethodConnect && strings.EqualFold(r.Header.Get(":protocol"), "websocket")
	}
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		headerHasToken(r.Header, "Upgrade", "websocket")
}

// Subprotocols returns the subprotocols the client of r offers
// (Sec-WebSocket-Protocol), in its order of preference, or nil: for a
// handler that picks AcceptOptions.Subprotocols per request. Accept
// answers with the first of those options that the client offers. An
// offer that is not a token (RFC 6455 §4.1), which no AcceptOptions may
// name, is left out: handed to Accept, it would refuse the request as a
// misconfigured server's.
func Subprotocols(r *http.Request) []string {
	var offered []string
	for p := range listElements(r.Header[hdrProtocol]) {
		if validHeaderName(p) {
			offered = append(offered, p)
		}
	}
	return offered
}
