//go:build js && wasm

package websocket

import (
	"context"
	"net/http"
)

// Dial opens a WebSocket connection to rawURL (ws, wss, http or https)
// with the browser's own WebSocket: this Dial is the one of programs
// built with GOOS=js GOARCH=wasm, run in a browser. The Conn it returns
// has the same methods and works the same way as any other, contexts
// included: one that ends interrupts the call and leaves the connection
// usable. But the browser speaks the protocol itself, and keeps some of it
// to itself:
//
//   - Of opts, only Subprotocols, CloseTimeout and the write queue's
//     options (see below) apply. The browser sends the request headers
//     it chooses (its Origin, its cookies, its own offer of
//     permessage-deflate, which it then runs unseen), so HTTPClient,
//     Header, Host and the Compression options are ignored.
//     Keepalive is off, whatever the options say: the browser answers the
//     server's pings itself, and cannot send any.
//   - Ping returns an error wrapping errors.ErrUnsupported, at once.
//   - resp stands in for the handshake's response, which the browser does
//     not show: status 101, with the Sec-WebSocket-Protocol and
//     Sec-WebSocket-Extensions headers the browser reports. When the
//     connection cannot be opened, the browser does not say why (its
//     console may), and Dial's error cannot either.
//   - A page may close a WebSocket with code 1000 or 3000-4999 only, so a
//     close frame with another code goes out as 1000, with its reason: a
//     connection that the Conn fails with StatusMessageTooBig, for
//     example, is closed with 1000 and the reason that says so, while the
//     error the caller gets holds 1009. The browser cannot drop a
//     connection without a close frame either: CloseNow sends one without
//     a status code, and the browser completes the closing handshake on
//     its own.
//   - The browser receives each message whole before the Conn reads any of
//     it. SetReadLimit fails the connection with a message beyond the
//     limit once it was received, having copied at most one read buffer
//     of its payload out of the browser's memory, and allocating nothing
//     for its size (the rest is copied and dropped while the closing
//     handshake runs). Messages that arrive after CloseWrite are
//     dropped by the browser; reads then return the peer's close. A text
//     message that is not UTF-8 makes the browser fail the connection,
//     with a close frame of its choosing (Chromium's says 1002): reads
//     return the connection lost, CloseStatus StatusAbnormalClosure,
//     where other Conns fail it with StatusInvalidFramePayloadData.
//   - Write returns once the browser has taken the message; the browser
//     buffers what the network has not yet taken (its bufferedAmount),
//     which neither Buffered counts nor WriteQueueLimit bounds: they are
//     about the Conn's own queue, which the browser takes without
//     waiting. A text message is sent as a string: invalid UTF-8 in it
//     arrives as U+FFFD.
//   - LocalAddr and RemoteAddr return nil.
//
// ctx bounds the opening handshake; once Dial returns, it no longer
// governs the connection.
func Dial(ctx context.Context, rawURL string, opts *DialOptions) (*Conn, *http.Response, error) {
	if opts == nil {
		opts = &DialOptions{}
	}
	u, err := dialURL(rawURL)
	if err != nil {
		return nil, nil, err
	}
	if u.Scheme == "https" {
		u.Scheme = "wss"
	} else {
		u.Scheme = "ws"
	}
	s, err := openBrowserSocket(ctx, u.String(), opts.Subprotocols)
	if err != nil {
		return nil, nil, dialErr(rawURL, err)
	}
	subprotocol := s.ws.Get("protocol").String()
	resp := &http.Response{
		Status:     "101 Switching Protocols",
		StatusCode: http.StatusSwitchingProtocols,
		Header:     http.Header{},
		Body:       http.NoBody,
	}
	if subprotocol != "" {
		resp.Header.Set("Sec-WebSocket-Protocol", subprotocol)
	}
	if ext := s.ws.Get("extensions").String(); ext != "" {
		resp.Header.Set("Sec-WebSocket-Extensions", ext)
	}
	return newConn(&connConfig{
		client:            true,
		subprotocol:       subprotocol,
		tr:                transport{rw: s, dl: s, browser: true},
		closeTimeout:      opts.CloseTimeout,
		keepaliveInterval: -1,
		queueLimit:        opts.WriteQueueLimit,
		closeOnFull:       opts.CloseOnQueueFull,
	}), resp, nil
}
