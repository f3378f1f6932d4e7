// Package websocket implements the WebSocket protocol of RFC 6455 for
// servers and clients, on the standard library alone.
//
// # Overview
//
// A server accepts connections in an http.Handler with Accept; a client
// opens them with Dial. Both give a *Conn, which reads and writes whole
// messages (Read, Write) or streams them (Reader, Writer). Control frames
// are handled inside reads: pings are answered, pongs wake Ping, and the
// peer's close frame ends reading with a CloseError.
//
//	func handler(w http.ResponseWriter, r *http.Request) {
//		c, err := websocket.Accept(w, r, nil)
//		if err != nil {
//			return // Accept has answered with an HTTP error
//		}
//		defer c.CloseNow()
//		for {
//			typ, p, err := c.Read(r.Context())
//			if err != nil {
//				return
//			}
//			if err := c.Write(r.Context(), typ, p); err != nil {
//				return
//			}
//		}
//	}
//
// The connection checks everything the peer sends: frames that break the
// protocol fail the connection with StatusProtocolError, text that is not
// UTF-8 with StatusInvalidFramePayloadData (at the first bad byte, before
// the rest of the message arrives), and messages over the read limit with
// StatusMessageTooBig. The read returns a *ProtocolError saying what went
// wrong; CloseStatus reports the code sent. That read returns once the peer
// has closed its side, or when the close timeout passes. Once our close
// frame is out (Close, CloseWrite), no other may follow it: a violation
// the read meets then fails the closing handshake, and the read, as every
// later call, returns an error wrapping ErrClosed that says what went
// wrong and names the close sent, with StatusAbnormalClosure, the peer's
// answer not having come.
//
// # Concurrency
//
// One goroutine at a time may read: Read, Reader and the reader Reader
// returns. Any number may write concurrently: Write, Writer, and Ping are
// safe for concurrent use, and messages never interleave, since a message
// writer holds the connection's message lock until it is closed. Control
// frames (pongs, pings, the close frame) take only the frame lock, so they
// may go out between the frames of a long message, as RFC 6455 §5.4
// allows. Close, CloseWrite and CloseNow may be called from any goroutine,
// at any time.
//
// Every blocking method takes a context. If it ends while the call waits,
// the call returns the context's error and the connection stays usable,
// unless the protocol state no longer allows it: a read whose context ends
// after part of a message was consumed fails the connection with
// StatusPolicyViolation (and returns at once, without waiting for the
// peer's answer to that close frame; once our close frame is out, which
// no other may follow, it closes the connection, whose end, with no
// answer from the peer, is StatusAbnormalClosure), and a write whose
// context ends while a frame is partly written closes the connection,
// since nothing can follow a cut frame (over TLS, while any write is
// under way: crypto/tls writes nothing more after a write that failed).
// On a transport without deadlines, the end of a context during blocked
// I/O closes the connection.
//
// Ping reads its own pong when nothing else reads the connection, and
// otherwise lets the reader at work see it.
//
// # Keepalive
//
// Every connection pings a quiet peer and drops one that has gone silent:
// after KeepaliveInterval (20 seconds) with nothing received, it sends a
// ping, and if nothing at all arrives within KeepaliveTimeout (20 seconds)
// it fails the connection with StatusInternalError; every call then
// returns an error wrapping ErrKeepaliveTimeout. Any frame counts as a sign
// of life, so a busy connection never pings. It runs with no goroutine or
// timer of its own (one timer serves every connection's keepalive),
// whether the connection is read by a Read loop, by Serve (a parked
// connection wakes for the pong as for any input), or not at all (the
// keepalive then reads the control frames that answer it, leaving
// messages for the next Read). It reads no further than a message that
// has come and nobody has read, nor on a message that a Reader left half
// read; a pong behind it waits for a reader. On Linux, over TCP and TLS,
// input that reached the kernel after the ping still counts then (the
// socket's queue of unread input grew); elsewhere, and over HTTP/2, a
// peer whose ping answer waits there longer than KeepaliveTimeout is
// dropped as silent, so a connection whose peer sends messages must be
// read (Read, Serve) for keepalive to see its answers. A ping queued
// behind a large frame being written, or a backlog of queued messages,
// waits while the peer takes them in, however slowly (each system call
// that moves part of them counts, on a plain Unix socket; each 64 KiB
// elsewhere), and the timeout counts from when the ping goes out; so does
// a ping that waits in the kernel's buffer behind output written before
// it, on Linux over TCP and TLS, for as long as the socket's queue of
// output not yet taken by the peer shrinks within each KeepaliveTimeout.
// Output that stops moving for KeepaliveTimeout fails the connection as
// silence does. Once our close frame is sent or queued (Close, CloseWrite,
// a shutdown, a full queue's 1008), the keepalive stops: no ping may
// follow that frame, and the close timeout bounds the rest. A negative
// KeepaliveInterval turns it off.
//
// # Backpressure and broadcast
//
// What a connection holds of messages written and not yet handed to the
// network is bounded by WriteQueueLimit (512 KiB), and Buffered reports
// it. When a peer stops reading, the kernel's socket buffers fill first,
// then the queue; past the limit, Write waits for the network until its
// context ends, and Enqueue, which never waits, refuses the message with
// ErrQueueFull, or, with CloseOnQueueFull, fails the connection with
// StatusPolicyViolation, its close frame queued behind what was taken.
//
// A PreparedMessage is encoded once for many connections: framed once,
// compressed once for each window size its receivers use, and sent on a
// connection that keeps its compression context without compressing it
// again (the connection adds the text to its window, as the peer's
// decoder does). PreparedMessage.Broadcast enqueues it on every
// connection given, so a stalled receiver never delays the others, and
// costs its queue limit (in buffers of up to twice that) and a goroutine
// blocked writing to it, until the keepalive drops it. A receiver whose
// queue is full misses the message, a reading one too if messages come
// faster than its network takes them: Broadcast's count says how many
// took it. Broadcast to a room from one goroutine at a time, under the
// room's lock (see the example of PreparedMessage.Broadcast): every
// member then gets the room's messages in one order, and one that reads
// all it is sent misses none because senders got in each other's way.
// Messages that several goroutines send to one connection at once wait
// behind each other, and on busy processors, behind one that the
// scheduler set aside, they can fill the queue while the socket is empty.
// A program whose receivers must see every message or none (a chat, a
// feed of changes) sets CloseOnQueueFull, which drops such a receiver
// with 1008 instead, as a hub that gives up on a client whose channel is
// full does.
//
// # Shutdown
//
// net/http's Server.Shutdown knows nothing of hijacked connections. A
// Registry set in AcceptOptions keeps every connection accepted, and its
// Shutdown refuses new handshakes with 503, sends StatusGoingAway to every
// connection, waits for the closing handshakes until its context ends and
// closes the rest. Tie it to the HTTP server with
//
//	srv.RegisterOnShutdown(func() { reg.Shutdown(context.Background()) })
//
// and call reg.Shutdown(ctx) after srv.Shutdown(ctx) to wait for it.
//
// # Adapters
//
// NetConn turns a Conn whose messages are of one type into a net.Conn, for
// protocols written against byte streams, with deadlines that interrupt
// blocked calls and leave the connection usable. The wsjson package reads
// and writes messages as JSON.
//
// # Coming from gorilla/websocket
//
//	gorilla/websocket                      this package
//	Upgrader.Upgrade                       Accept, AcceptOptions
//	Upgrader.CheckOrigin                   same origin by default; AcceptOptions.OriginPatterns
//	IsWebSocketUpgrade, Subprotocols       IsUpgradeRequest (HTTP/2 too), Subprotocols
//	Dialer.Dial                            Dial, DialOptions
//	ReadMessage, WriteMessage              Read (or ReadAppend), Write, with a context
//	NextReader, NextWriter                 Reader, Writer
//	SetReadLimit                           SetReadLimit (32 MiB by default; 0 means 0, -1 no limit)
//	SetReadDeadline + SetPongHandler       keepalive, on by default
//	a goroutine that owns all writes       none: writes are safe concurrently
//	WriteControl(PingMessage)              Ping, which waits for the pong
//	PreparedMessage                        PreparedMessage, also with context takeover
//	a hub with a channel per client        PreparedMessage.Broadcast, WriteQueueLimit,
//	                                       CloseOnQueueFull to drop a client that lags
//	a read loop to answer the peer's close CloseRead, for a program that only writes
//	a net.Conn carried in messages         NetConn, with deadlines
//	NetConn, UnderlyingConn (the socket)   none: LocalAddr, RemoteAddr
//	EnableCompression                      AcceptOptions.Compression
//	WriteJSON, ReadJSON                    wsjson.Write, wsjson.Read
//	CloseHandler                           the read returns the peer's CloseError
//	WriteControl(CloseMessage)             Close, or CloseWrite to read on until the peer's close
//	Close (the socket, no handshake)       CloseNow
//	SetReadDeadline, SetWriteDeadline      the context of each call
//	IsCloseError, IsUnexpectedCloseError   CloseStatus: the peer's code, 1006 when the connection
//	                                       was lost without a close frame
//	CloseNormalClosure, CloseGoingAway...  StatusNormalClosure, StatusGoingAway...
//	ErrReadLimit, ErrBadHandshake          ErrMessageTooBig, ErrHandshake, found with errors.Is
//
// # Close handshake
//
// Close sends a close frame, reads until the peer's close frame arrives,
// delivering nothing more to readers, and closes the connection: a server
// closes TCP at once, a client waits for the server to close it first
// (RFC 6455 §7.1.1). CloseWrite sends the close frame and leaves reading to
// the caller, so messages the peer sent before it saw the close are not
// lost; the next read after the peer's close frame returns it as a
// CloseError. Both are bounded by the close timeout (5 seconds unless
// AcceptOptions.CloseTimeout or DialOptions.CloseTimeout says otherwise),
// but for a server's HTTP/2 stream whose socket takes nothing (see
// HTTP/2).
// CloseNow closes without a handshake.
//
// When the peer closes first, the read that meets its close frame answers
// it with the same status code, completes the handshake and returns the
// peer's CloseError. Once our close frame has been sent, writes return an
// error wrapping ErrCloseSent and ErrClosed; once the connection has
// ended, an error wrapping ErrClosed and what ended it.
//
// So the peer's close is answered only by a read: a connection that the
// program only writes to, and nothing reads, leaves it unanswered (the
// peer's Close waits out its timeout, and the writes go on until the
// connection is lost). CloseRead reads such a connection for it, as Serve
// does, and ends the context it returns when the connection ends. A
// client's read that meets the server's close frame returns once the
// server has closed TCP, within the close timeout.
//
// # Limits
//
// Every resource a peer can make a connection spend is bounded. The
// defaults, and what each costs a server holding 100,000 connections:
//
//	limit               default           set with                        cost at 100,000 connections
//	message size        32 MiB            SetReadLimit                    up to 32 MiB each, only while a message
//	                                                                      arrives and only as its bytes come
//	inflated size       the read limit    SetReadLimit                    the same, counted on inflated bytes
//	control frame       125 bytes         RFC 6455                        nothing held
//	unsent data         512 KiB           WriteQueueLimit                 up to 50 GiB if every peer stops
//	                                                                      reading (in buffers of up to twice
//	                                                                      that), and a goroutine each blocked
//	                                                                      writing: lower it for many peers
//	opening handshake   none in net/http  http.Server.ReadHeaderTimeout,  a goroutine per slow handshake
//	                                      Dial's context                  until the timeout
//	closing handshake   5 s               CloseTimeout                    a timer per closing connection
//	silent peer         20 s + 20 s       KeepaliveInterval and Timeout   a slot each in one timer's heap;
//	                                                                      5,000 pings a second
//	idle connection                                                       3.3 KiB each with Serve, about
//	                                                                      12 KiB with a Read loop, 10 of them
//	                                                                      what any net/http handler holds
//	                                                                      while it waits in a read
//
// The read limit is checked against each frame's declared length before
// the frame is read, so the excess is never buffered, and against what a
// compressed message inflates to as it inflates. Read allocates a
// message's slice once enough of it has arrived (the whole of a small
// frame; half of a large message, gathered meanwhile in pooled chunks of
// 4 KiB growing to 64 KiB), and ReadAppend grows the caller's slice as
// bytes arrive, at most doubling what came or reaching 64 KiB past it:
// never to what a peer merely claims. On Linux, what came includes what
// waits unread in the kernel's socket buffer. Close reasons hold at most
// 123 bytes. Set http.Server.ReadHeaderTimeout (and MaxHeaderBytes):
// net/http waits for a request's header forever by default, and a
// handshake trickled a byte at a time would hold a goroutine as long;
// Dial reads at most 1 MiB of response header itself, and its context
// bounds the whole handshake.
//
// An idle connection holds no buffer: reads take pooled 32 KiB buffers
// while frames arrive and return them when the connection falls quiet,
// and writes take one per frame. With Serve it holds no goroutine either.
//
// # Security
//
// Accept takes only same-origin requests from browsers (the Origin
// header's host and port those of the request's Host, a scheme's default
// port written or not) unless AcceptOptions.OriginPatterns names other
// origins: a WebSocket is not
// subject to the browser's same-origin policy, so without that check any
// page a user visits could open a connection to the server carrying the
// user's cookies and act as the user (cross-site WebSocket hijacking).
// InsecureSkipOriginCheck turns the check off; prefer OriginPatterns, or
// authenticate with something a foreign page cannot send, such as a token
// in a header or the first message.
//
// A client masks every frame with a key from crypto/rand, as RFC 6455
// §5.3 asks: a key an attacker can predict would let a page shape the
// bytes a proxy between it and the server sees, and poison the proxy's
// cache (the reason masking exists, §10.3).
//
// # Many connections, many messages
//
// Read allocates each message it returns; ReadAppend appends it to a slice
// of the caller's instead, so a loop that reuses its slice reads without
// allocating. Serve goes further for servers holding many connections: it
// calls a function for each message, from a goroutine of its own, and
// while a connection is quiet holds neither a buffer nor (on Linux, where
// quiet connections wait together in one epoll set) a goroutine for it,
// so an idle connection costs little more than the Conn itself.
//
// Small writes are coalesced: a frame written while another write is in
// progress, or while the reader holds messages not yet handed out, joins a
// queue that goes out in one system call with the write in progress, or
// before the reader next waits for input (a short timer sends it should no
// read come). A write with nothing ahead of it goes out at once, so
// coalescing adds no latency to a lone message.
//
// # Compression
//
// Compression (RFC 7692, permessage-deflate) is off unless
// AcceptOptions.Compression or DialOptions.Compression ask for it, and
// then only used when the peer agrees. CompressionNoContextTakeover
// compresses each message on its own, so an idle connection keeps no
// compression state at all; CompressionContextTakeover lets each side
// refer back to earlier messages, which shrinks small, similar messages
// far better, for one window per direction per connection. Messages
// shorter than CompressionThreshold go out uncompressed.
//
// Window sizes are honoured both ways: CompressionWindowBits (8 to 15)
// bounds our compressor's window, and asks the peer to bound its own where
// the negotiation allows; when the peer limits our window, no
// back-reference we emit reaches further. The compressor and the
// decompressor are the package's own (compress/flate compresses with a
// 32 KiB window, and keeps 32 KiB of history to decompress, whatever was
// negotiated): the decompressor keeps the window the peer agreed to and no
// more, and a back-reference of the peer's beyond it fails the connection
// with StatusInvalidFramePayloadData. Servers built on zlib cannot keep an
// 8-bit window and decline (or, sometimes, fail) a client that asks for
// one; a server asks a client for 9 bits where it would ask for 8, as
// some zlib clients fail when told to keep to 8 bits (python-websockets),
// unless the client names 8 itself.
//
// Compression costs memory mostly with context takeover: each connection
// keeps its two windows, up to 2^bits bytes each way (64 KiB at 15 bits,
// 2 KiB at 10), where without takeover a quiet connection keeps nothing;
// a closed connection lets go of them, though its Conn stays referenced
// (a Writer left open keeps its compressor until it is closed, or a
// write to it fails).
// While a connection compresses, its compressor holds 100 KiB of working
// state (190 KiB at 15 bits), given back after 100 ms without a compressed
// message, or with a window of 2^10 or less at the end of every message,
// since restoring a window that small costs a few microseconds.
// Decompressing borrows 12.5 KiB from a pool for the length of a message,
// and gives it back while the connection waits for the rest of a message
// that stalls, keeping under 1 KiB. A server with 500 connections
// that each exchanged three 4 KiB messages with context takeover, then
// fell quiet, grew by 66.4 KiB per connection at 15 bits and 12.1 KiB at 10
// with Serve, 67.9 and 20.0 KiB with a Read loop (bench/cmd/compmem).
//
// The read limit applies to what a message inflates to, counted as it
// inflates: a small message that would inflate past it fails the
// connection with StatusMessageTooBig before the excess exists. Its
// compressed bytes are bounded as well, at the limit plus 1/256 of it and
// 1 KiB, each frame's first 32 bytes counting as one (a sender may flush
// its compressor at every fragment's end): more fails the connection with
// StatusMessageTooBig too, once a frame's header claims it. Corrupt
// compressed data fails it with StatusInvalidFramePayloadData.
//
// # HTTP/2
//
// Both roles speak WebSockets over HTTP/2 (RFC 8441): the client opens a
// stream with an extended CONNECT whose :protocol is websocket, the server
// answers 200, and the frames of RFC 6455 travel in the stream's DATA
// frames. There is no Sec-WebSocket-Key and no Sec-WebSocket-Accept (RFC
// 8441 §5); subprotocols, extensions, origins and other headers are
// negotiated as over HTTP/1.1.
//
// Accept takes such a stream with the same handler, over TLS or over
// cleartext HTTP/2 (h2c: http.Server.Protocols with SetUnencryptedHTTP2).
// Go's HTTP/2 server offers extended CONNECT (SETTINGS_ENABLE_CONNECT_PROTOCOL)
// only when the program starts with GODEBUG=http2xconnect=1 in its
// environment, in Go 1.24 to 1.26 at least: net/http reads the variable
// once as it starts, so setting it later, or with a //go:debug directive,
// does nothing (the echo example with -tls re-runs itself with it). A
// release of Go that gains a server setting for it (planned as
// HTTP2Config.EnableConnectProtocol) turns it on there instead; the
// package's tests fail the day a Go release changes what the variable
// does. Without it, browsers and this package's Dial fall back to HTTP/1.1
// (or, with HTTP2Required, fail). The request's method is CONNECT, so a
// ServeMux pattern "GET /ws" does not match it: register "/ws", or both
// "GET /ws" and "CONNECT /ws". The stream ends when the handler returns,
// so the handler must keep running while the Conn is in use; Serve, over
// HTTP/2, serves from the handler's goroutine and returns at the end.
//
// A stream's END_STREAM stands for the close of a TCP connection (RFC 8441
// §5). A server's Conn closes as soon as the close frames are exchanged,
// or at once after its own close frame when it fails the connection, and
// the handler's return puts END_STREAM on the wire; the client waits for
// it and ends its own side with END_STREAM in turn, or resets the stream
// (RST_STREAM CANCEL) if its close timeout passes first.
//
// Dial with DialOptions.HTTP2 set opens the stream itself: over TLS with
// ALPN h2 for wss://, over h2c with prior knowledge for ws://. WebSockets
// to the same origin, dialed with the same HTTP client transport, share
// one HTTP/2 connection, as many as the server's
// SETTINGS_MAX_CONCURRENT_STREAMS allows (further connections are dialed
// past it); Close ends the WebSocket's stream alone, and the connection
// closes with its last stream. A stream the server resets ends its Conn
// alone. The transport's TLS configuration, dial functions, timeouts
// and limits apply, and of its HTTP2 settings those that bound a
// connection gone silent or stuck (SendPingTimeout, PingTimeout,
// WriteByteTimeout) and what a stream holds unread
// (MaxReceiveBufferPerStream; 256 KiB by default); a proxy, a custom
// RoundTripper or DialTLSContext without ALPN h2 rule HTTP/2 out. HTTP2Preferred falls back to HTTP/1.1
// when the server does not take WebSockets over HTTP/2; HTTP2Required
// fails with an error wrapping ErrHTTP2Unavailable that says why.
//
// Contexts: on the client, HTTP/2 streams have deadlines of their own, so
// a context that ends during a blocked call cancels that call alone, as
// over TCP; but a write whose frames the socket stops taking, a second
// past the context's end, ends the HTTP/2 connection with every stream on
// it, since a frame half sent cannot be taken back (over TCP such a
// write closes its own connection). On the server they cannot: Go's HTTP/2 server ends the
// request body for good when a read deadline passes and resets the stream
// when a write deadline does, so there a context that ends during a
// blocked call closes the connection. A read's sends a close frame first
// when no write is under way (within 100 ms): StatusPolicyViolation inside
// a message, as over TCP, StatusGoingAway between messages. Closing a server's connection
// resets its stream (RST_STREAM) if a write is under way, one waiting for
// a flow-control window the client does not give, say, and every call
// that finds the connection closed (CloseNow among them) returns only once
// that write has ended: the handler may then return, which net/http
// forbids while another goroutine writes to its ResponseWriter (it hands
// the writer's state to another stream). When the HTTP/2 connection's
// socket takes nothing, the reset cannot go out either, and the write,
// and with it those calls, end only with that connection: set the
// server's http.HTTP2Config.WriteByteTimeout, which ends a connection
// whose socket takes nothing for that long, or call http.Server.Close,
// which ends every connection at once. Registry.Shutdown does not wait for
// them once its context ends, nor does http.Server.Shutdown end them.
//
// # Browsers
//
// A program built with GOOS=js GOARCH=wasm and run in a browser dials with
// the browser's own WebSocket: Dial there returns a Conn with the same
// methods, which behave the same way (Read, ReadAppend, Reader, Write,
// Writer, Close, CloseWrite, CloseNow, Serve, NetConn; a context that ends
// interrupts the call and leaves the connection usable; CloseStatus
// reports the peer's code and reason). The browser speaks the protocol
// itself, and some of it stays out of reach:
//
//   - Of DialOptions, only Subprotocols, CloseTimeout and the write queue's
//     options apply. The browser sends its own request headers (Origin,
//     cookies) and its own offer of compression, which it runs unseen, so
//     HTTPClient, Header, Host and the Compression options are ignored.
//     Keepalive is off: the browser answers the server's pings itself.
//   - Ping fails at once with an error wrapping errors.ErrUnsupported.
//   - A page may send close codes 1000 and 3000-4999 only; a close frame
//     with another code goes out as 1000 with its reason. CloseNow sends a
//     close frame without a status code, and the browser finishes the
//     handshake on its own.
//   - Dial cannot say why a connection could not be opened (the browser
//     keeps that to its console); its response holds only the status 101
//     and the subprotocol and extensions the browser reports.
//   - Each message is received whole before it is read: the read limit
//     applies once it arrived, before it is copied. What the browser
//     buffers for sending is neither bounded nor counted by Buffered.
//     Messages the server sends after CloseWrite are dropped by the
//     browser. Invalid UTF-8 in a text message the page sends arrives as
//     U+FFFD; in one the server sends, the browser fails the connection
//     with a close frame of its choosing, and reads see it lost
//     (StatusAbnormalClosure) rather than a *ProtocolError with
//     StatusInvalidFramePayloadData. LocalAddr and RemoteAddr return nil.
//
// Accept and the rest of the server side are not for browsers.
package websocket
