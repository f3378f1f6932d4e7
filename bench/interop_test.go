package bench_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lesismal/nbio/nbhttp"
	ours "github.com/rfc6455/websocket"
)

// The interop matrix: our Accept with each other library's client, and our
// Dial with each other library's server, in process on loopback. The other
// side is an echo with a few commands (peerSession), driven by ours
// (driveEcho, driveClose): messages of every length that matters to the
// framing, compressed or not, fragmented with pings between the fragments
// both ways, and close handshakes begun by either side with a code and a
// 123-byte reason, with no code, or with a connection cut. Both sides say
// what they saw: the exact bytes, codes and reasons.

// interopWait bounds each exchange.
const interopWait = 5 * time.Second

// Commands that the peer's echo obeys instead of echoing.
const (
	cmdClose    = "\x00close "    // "\x00close 4001 reason": begin the close handshake (1005: no code)
	cmdAbort    = "\x00abort"     // close TCP without a close frame
	cmdFragPing = "\x00fragping " // send the rest back in three fragments, a ping with a payload after the first two
	// For a peer that writes frames itself (rawPeer):
	cmdCutMid     = "\x00cutmid"     // send a message's first fragment, then close TCP
	cmdCutOnClose = "\x00cutonclose" // close TCP, without an answer, when a close frame comes
)

// rawPeer is a peerConn that can break the protocol's flow on purpose.
type rawPeer interface {
	cutMid() error
	cutOnClose()
}

// peerEvent is what the peer's side of a connection saw: a data message,
// or, last, the close frame that ended it or the error that did.
type peerEvent struct {
	typ    ours.MessageType
	p      []byte
	closed bool   // a close frame came
	code   int    // its code, 1005 if it had none
	reason string // its reason
	err    error  // the connection ended without a close frame, or misbehaved
}

func (e peerEvent) String() string {
	switch {
	case e.closed:
		return fmt.Sprintf("close frame %d %q", e.code, e.reason)
	case e.err != nil:
		return "error: " + e.err.Error()
	}
	return fmt.Sprintf("message type %d, %d bytes", e.typ, len(e.p))
}

// peerConn is the other library's end of a connection.
type peerConn interface {
	// events delivers the data messages, then one last event, then closes.
	events() <-chan peerEvent
	write(typ ours.MessageType, p []byte) error
	// fragPing writes p in three fragments, with a ping carrying ping1
	// after the first and ping2 after the second; it reports
	// errors.ErrUnsupported if the library cannot.
	fragPing(typ ours.MessageType, p []byte, ping1, ping2 string) error
	// closeWith begins the close handshake; 1005 sends no code.
	closeWith(code int, reason string) error
	abort()
}

// peerInfo is what the other library's end knows of the handshake.
type peerInfo struct {
	subprotocol string
	extensions  string      // Sec-WebSocket-Extensions settled; "?" if the library does not say (nbio's client)
	header      http.Header // the other side's request or response header; nil if the library keeps none (nbio's client)
	offer       string      // a server's: the client's Sec-WebSocket-Extensions
}

// peerSession echoes pc's messages and obeys the commands, then reports
// the last event on done.
func peerSession(pc peerConn, done chan<- peerEvent) {
	for ev := range pc.events() {
		if ev.closed || ev.err != nil {
			done <- ev
			// Let the library finish its side (answer, close TCP).
			for range pc.events() {
			}
			return
		}
		s := string(ev.p)
		var err error
		switch {
		case strings.HasPrefix(s, cmdClose):
			var code int
			var reason string
			fmt.Sscanf(s[len(cmdClose):], "%d", &code)
			if i := strings.IndexByte(s[len(cmdClose):], ' '); i >= 0 {
				reason = s[len(cmdClose)+i+1:]
			}
			err = pc.closeWith(code, reason)
		case s == cmdAbort:
			pc.abort()
		case s == cmdCutMid:
			err = pc.(rawPeer).cutMid()
		case s == cmdCutOnClose:
			pc.(rawPeer).cutOnClose()
			err = pc.write(ev.typ, ev.p)
		case strings.HasPrefix(s, cmdFragPing):
			err = pc.fragPing(ev.typ, ev.p[len(cmdFragPing):], "", strings.Repeat("p", 125))
			if errors.Is(err, errors.ErrUnsupported) {
				err = pc.write(ev.typ, ev.p[len(cmdFragPing):])
			}
		default:
			err = pc.write(ev.typ, ev.p)
		}
		if err != nil {
			// A close frame that came meanwhile ended the write: report
			// it, or else the write's error.
			last := peerEvent{err: fmt.Errorf("peer's write: %w", err)}
			timeout := time.After(interopWait)
		drain:
			for {
				select {
				case ev, ok := <-pc.events():
					if !ok {
						break drain
					}
					if ev.closed {
						last = ev
					}
				case <-timeout:
					break drain
				}
			}
			done <- last
			pc.abort()
			for range pc.events() {
			}
			return
		}
	}
	done <- peerEvent{err: errors.New("events ended with no last event")}
}

// interopPayload returns n bytes: text that compresses well, or binary
// that does not.
func interopPayload(typ ours.MessageType, n int) []byte {
	if typ == ours.MessageText {
		p := make([]byte, n)
		const words = "lorem ipsum dolor sit amet, consectetur adipiscing elit "
		for i := range p {
			p[i] = words[(i*7+i/len(words))%len(words)]
		}
		return p
	}
	return payload(n)
}

var interopSizes = []int{0, 1, 125, 126, 65535, 65536, 1 << 20}

// reason123 is a close reason of the most bytes a close frame holds, in
// characters of two and three bytes.
var reason123 = strings.Repeat("é€", 24) + "abc"

// driveEcho sends each size in both types through the peer's echo, then
// a message ours writes in fragments with pings between, and one the peer
// sends back in fragments with pings of its own between; skip names sizes
// the peer cannot take, big says whether to send those over 126 bytes,
// and pings whether ours pings between its fragments.
func driveEcho(t *testing.T, c *ours.Conn, skip func(n int) bool, big, pings bool, done <-chan peerEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	defer func() {
		if t.Failed() {
			select {
			case ev := <-done:
				t.Logf("the peer saw %v", ev)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	for _, n := range interopSizes {
		// Large messages only where big says, and no mebibyte under
		// the race detector, which slows compression tenfold.
		if skip != nil && skip(n) || n > 126 && !big || n > 1<<16 && raceEnabled {
			continue
		}
		for _, typ := range []ours.MessageType{ours.MessageText, ours.MessageBinary} {
			want := interopPayload(typ, n)
			if err := c.Write(ctx, typ, want); err != nil {
				t.Fatalf("write of %d bytes, type %d: %v", n, typ, err)
			}
			gotTyp, got, err := c.Read(ctx)
			if err != nil {
				t.Fatalf("read of the echo of %d bytes, type %d: %v", n, typ, err)
			}
			if gotTyp != typ || string(got) != string(want) {
				t.Fatalf("echo of %d bytes, type %d: type %d, %d bytes, %s", n, typ, gotTyp, len(got), firstDiff(got, want))
			}
		}
	}

	// Ours in fragments, with pings (ours carry no payload we choose)
	// between them.
	want := interopPayload(ours.MessageText, 3*8192)
	w, err := c.Writer(ctx, ours.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := w.Write(want[i*8192 : (i+1)*8192]); err != nil {
			t.Fatalf("fragment %d: %v", i, err)
		}
		if i < 2 && pings {
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("ping after fragment %d: %v", i, err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if typ, got, err := c.Read(ctx); err != nil || typ != ours.MessageText || string(got) != string(want) {
		t.Fatalf("echo of a fragmented message: type %d, %d bytes, %v, %s", typ, len(got), err, firstDiff(got, want))
	}

	// The peer's in fragments, with its pings between them.
	for _, n := range []int{3, 3 * 8192} {
		want = interopPayload(ours.MessageBinary, n)
		if err := c.Write(ctx, ours.MessageBinary, append([]byte(cmdFragPing), want...)); err != nil {
			t.Fatal(err)
		}
		if typ, got, err := c.Read(ctx); err != nil || typ != ours.MessageBinary || string(got) != string(want) {
			t.Fatalf("%d bytes the peer sent in fragments: type %d, %d bytes, %v, %s", n, typ, len(got), err, firstDiff(got, want))
		}
	}
}

func firstDiff(got, want []byte) string {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	if len(got) != len(want) {
		return fmt.Sprintf("%d bytes, want %d", len(got), len(want))
	}
	return "same bytes"
}

// closeCase is one way a connection ends.
type closeCase struct {
	name string
	// by is who begins: "ours" (Close), "ours after message" (Close
	// while the peer echoes a message), "peer" (its close frame), "cut"
	// (the peer closes TCP), "cut mid" (the peer closes TCP inside a
	// message), or "cut on close" (ours closes, and the peer closes
	// TCP in answer).
	by     string
	code   int
	reason string
}

var closeCases = []closeCase{
	{name: "ours 4000 long reason", by: "ours", code: 4000, reason: reason123},
	{name: "ours 1000", by: "ours", code: 1000},
	{name: "ours no code", by: "ours", code: 1005},
	{name: "peer 4001 long reason", by: "peer", code: 4001, reason: reason123},
	{name: "peer 1001", by: "peer", code: 1001, reason: "bye"},
	{name: "peer no code", by: "peer", code: 1005},
	{name: "peer cuts TCP", by: "cut"},
	{name: "ours behind a message", by: "ours after message", code: 4002, reason: "after"},
	{name: "peer cuts TCP mid-message", by: "cut mid"},
	{name: "peer cuts TCP on our close", by: "cut on close", code: 4003, reason: "unanswered"},
}

// closeCasesFor returns the ways a row's connections end: the first alone
// with compression, all without; a peer that is no rawPeer cannot cut TCP
// at a chosen moment.
func closeCasesFor(oc ourComp, comp string, raw bool) []closeCase {
	if oc.mode != ours.CompressionDisabled || comp != "" {
		return closeCases[:1]
	}
	var cases []closeCase
	for _, cc := range closeCases {
		if raw || !strings.HasPrefix(cc.by, "cut ") {
			cases = append(cases, cc)
		}
	}
	return cases
}

// driveClose ends c as cc says, and checks what each side reports.
func driveClose(t *testing.T, c *ours.Conn, cc closeCase, done <-chan peerEvent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	switch cc.by {
	case "ours", "ours after message":
		if cc.by == "ours after message" {
			// The peer echoes the message after our close frame went:
			// Close drops it and completes the handshake.
			if err := c.Write(ctx, ours.MessageBinary, payload(70000)); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Close(ours.StatusCode(cc.code), cc.reason); err != nil {
			t.Errorf("our Close: %v", err)
		}
		select {
		case ev := <-done:
			if !ev.closed || ev.code != cc.code || ev.reason != cc.reason {
				t.Errorf("peer saw %v, want close frame %d %q", ev, cc.code, cc.reason)
			}
		case <-ctx.Done():
			t.Fatal("the peer reported nothing")
		}
	case "peer":
		cmd := fmt.Sprintf("%s%d %s", cmdClose, cc.code, cc.reason)
		if err := c.Write(ctx, ours.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Read(ctx)
		var ce ours.CloseError
		if !errors.As(err, &ce) || int(ce.Code) != cc.code || ce.Reason != cc.reason {
			t.Errorf("our Read: %v, want the peer's close frame %d %q", err, cc.code, cc.reason)
		}
		checkPrefix(t, err)
		select {
		case ev := <-done:
			// We answer with the peer's code, and no reason. (gws
			// closes TCP as it sends its close frame, and sees no
			// answer.)
			if !ev.closed {
				t.Logf("the peer saw %v, not our answer", ev)
			} else if ev.code != cc.code || ev.reason != "" {
				t.Errorf("peer saw %v, want our answer %d \"\"", ev, cc.code)
			}
		case <-ctx.Done():
			t.Fatal("the peer reported nothing")
		}
	case "cut on close":
		if err := c.Write(ctx, ours.MessageText, []byte(cmdCutOnClose)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Read(ctx); err != nil {
			t.Fatal(err)
		}
		// No close frame came: the close status is 1006, not ours.
		err := c.Close(ours.StatusCode(cc.code), cc.reason)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("our Close with the peer cutting TCP: %v (context: %v)", err, ctx.Err())
		}
		if !errors.Is(err, ours.ErrClosed) || ours.CloseStatus(err) != ours.StatusAbnormalClosure {
			t.Errorf("our Close with the peer cutting TCP: %v (close status %d), want ErrClosed and 1006", err, ours.CloseStatus(err))
		}
		checkPrefix(t, err)
		<-done
	case "cut", "cut mid":
		cmd := cmdAbort
		if cc.by == "cut mid" {
			cmd = cmdCutMid
		}
		if err := c.Write(ctx, ours.MessageText, []byte(cmd)); err != nil {
			t.Fatal(err)
		}
		_, _, err := c.Read(ctx)
		if err == nil || ctx.Err() != nil {
			t.Fatalf("our Read after the peer cut TCP: %v (context: %v)", err, ctx.Err())
		}
		if got := ours.CloseStatus(err); got != ours.StatusAbnormalClosure {
			t.Errorf("our Read after the peer cut TCP: %v, CloseStatus %d, want 1006", err, got)
		}
		checkPrefix(t, err)
		<-done
	}
	// Every later call reports the end, with one prefix: 1006 if no
	// close frame came.
	err := c.Write(ctx, ours.MessageText, []byte("late"))
	if !errors.Is(err, ours.ErrClosed) {
		t.Errorf("Write after the end: %v, want ErrClosed", err)
	}
	if strings.HasPrefix(cc.by, "cut") && ours.CloseStatus(err) != ours.StatusAbnormalClosure {
		t.Errorf("Write after the end: %v (close status %d), want 1006", err, ours.CloseStatus(err))
	}
	checkPrefix(t, err)
}

// checkPrefix fails the test unless err's message starts with one
// "websocket: " and holds no other.
func checkPrefix(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if s := err.Error(); !strings.HasPrefix(s, "websocket: ") || strings.Count(s, "websocket: ") != 1 {
		t.Errorf("error %q does not carry one websocket: prefix", s)
	}
}

// ourComp is a compression setting of ours, in both roles.
type ourComp struct {
	mode      ours.CompressionMode
	bits      int
	threshold int
}

func (o ourComp) String() string {
	s := [...]string{"off", "nocontext", "takeover"}[o.mode]
	if o.bits != 0 {
		s += fmt.Sprint(o.bits)
	}
	if o.threshold != 0 {
		s += fmt.Sprintf("-from%d", o.threshold)
	}
	return s
}

var ourComps = []ourComp{
	{ours.CompressionDisabled, 0, 0},
	{ours.CompressionNoContextTakeover, 0, 0},
	{ours.CompressionContextTakeover, 0, 0},
	{ours.CompressionContextTakeover, 10, 0},
	// Every message compressed, the empty one too.
	{ours.CompressionNoContextTakeover, 9, 1},
	{ours.CompressionContextTakeover, 0, 1},
}

// accepted is a connection our server accepted, and the client's offer
// of extensions.
type accepted struct {
	c     *ours.Conn
	offer string
}

// interopServer starts our server on loopback with opts, and hands each
// connection accepted to the test on the channel returned. A request
// without the header X-Interop: request is refused.
func interopServer(t *testing.T, opts *ours.AcceptOptions) (url string, conns <-chan accepted) {
	ch := make(chan accepted, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Interop") != "request" {
			http.Error(w, "no X-Interop header", http.StatusBadRequest)
			return
		}
		c, err := ours.Accept(w, r, opts)
		if err != nil {
			return
		}
		ch <- accepted{c, r.Header.Get("Sec-WebSocket-Extensions")}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "ws://" + ln.Addr().String() + "/ws", ch
}

// checkAnswer says how answer breaks RFC 7692 as a server's response to
// offer (one or more offers, comma-separated), or nil if it does not.
func checkAnswer(offer, answer string) error {
	if answer == "" {
		return nil
	}
	parse := func(s string) ([]map[string]string, error) {
		var out []map[string]string
		for _, ext := range strings.Split(s, ",") {
			parts := strings.Split(ext, ";")
			if strings.TrimSpace(parts[0]) != "permessage-deflate" {
				return nil, fmt.Errorf("extension %q", parts[0])
			}
			m := map[string]string{}
			for _, prm := range parts[1:] {
				k, v, hasV := strings.Cut(strings.TrimSpace(prm), "=")
				if _, dup := m[k]; dup {
					return nil, fmt.Errorf("%s repeated", k)
				}
				switch k {
				case "server_no_context_takeover", "client_no_context_takeover":
					if hasV {
						return nil, fmt.Errorf("%s with a value", k)
					}
				case "server_max_window_bits", "client_max_window_bits":
					if b, err := strconv.Atoi(v); hasV && (err != nil || b < 8 || b > 15) {
						return nil, fmt.Errorf("%s=%s", k, v)
					}
				default:
					return nil, fmt.Errorf("unknown parameter %s", k)
				}
				m[k] = v
			}
			out = append(out, m)
		}
		return out, nil
	}
	offers, err := parse(offer)
	if err != nil {
		return fmt.Errorf("offer %q: %v", offer, err)
	}
	answers, err := parse(answer)
	if err != nil || len(answers) != 1 {
		return fmt.Errorf("answer %q is not one permessage-deflate: %v", answer, err)
	}
	a := answers[0]
	var why []string
	for _, o := range offers {
		var broken []string
		if _, ok := o["server_no_context_takeover"]; ok {
			if _, ok := a["server_no_context_takeover"]; !ok {
				broken = append(broken, "server_no_context_takeover offered, not answered")
			}
		}
		if v, ok := a["server_max_window_bits"]; ok {
			if v == "" {
				broken = append(broken, "server_max_window_bits without a value")
			} else if ov, ok := o["server_max_window_bits"]; ok && bitsOf(v) > bitsOf(ov) {
				broken = append(broken, "server_max_window_bits above the offer")
			}
		} else if _, ok := o["server_max_window_bits"]; ok {
			broken = append(broken, "server_max_window_bits offered, not answered")
		}
		if v, ok := a["client_max_window_bits"]; ok {
			ov, offered := o["client_max_window_bits"]
			switch {
			case !offered:
				broken = append(broken, "client_max_window_bits not offered")
			case v == "":
				broken = append(broken, "client_max_window_bits without a value")
			case ov != "" && bitsOf(v) > bitsOf(ov):
				broken = append(broken, "client_max_window_bits above the offer")
			}
		}
		if len(broken) == 0 {
			return nil
		}
		why = append(why, strings.Join(broken, ", "))
	}
	return fmt.Errorf("answer %q to offer %q: %s", answer, offer, strings.Join(why, "; "))
}

func bitsOf(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// skipSizes is what a library cannot take: nbio v1.6.8 hands on no empty
// message (see TestEcho).
func skipSizes(lib string) func(int) bool {
	if lib == "nbio" {
		return func(n int) bool { return n == 0 }
	}
	return nil
}

// pingsFor says whether ours may ping lib's end of a connection that
// settled extensions. gws v1.8.9 adds the payload of every frame it writes,
// its pongs too, to the window of its compressor with context takeover
// (Conn.doWrite), so the messages it compresses after a pong refer to
// bytes the receiver never had: ours fails the connection with 1007 if
// the reference reaches past all it received, and reads wrong bytes
// otherwise.
// Its role's parameter noTakeover says that it does not keep its window.
func pingsFor(lib peerLib, extensions, noTakeover string) bool {
	return lib.name != "gws" || extensions == "" || strings.Contains(extensions, noTakeover)
}

func interopRequestHeader(origin string) http.Header {
	return http.Header{"X-Interop": {"request"}, "Origin": {origin}}
}

// TestInteropServer runs our Accept with each other library's client:
// the handshake (subprotocol, extra headers, Origin), every compression
// setting of ours against every offer the client can make, echoes and
// close handshakes.
func TestInteropServer(t *testing.T) {
	t.Parallel()
	for _, lib := range peerLibs {
		t.Run(lib.name, func(t *testing.T) {
			t.Parallel()
			skipRacy(t, lib.name)
			ctx := context.Background()
			if lib.name == "nbio" {
				ctx = context.WithValue(ctx, nbioEngineKey{}, nbioEngine(t, nbhttp.Config{}))
			}
			for _, oc := range ourComps {
				for j, comp := range lib.comps {
					if raceEnabled && j >= 4 {
						break // gobwas's many offers, slow under the race detector
					}
					t.Run(fmt.Sprintf("%v/%q", oc, comp), func(t *testing.T) {
						url, conns := interopServer(t, &ours.AcceptOptions{
							Subprotocols:          []string{"v2.interop", "v1.interop"},
							OriginPatterns:        []string{"peer.example"},
							ResponseHeader:        http.Header{"X-Reply": {"response"}},
							Compression:           oc.mode,
							CompressionWindowBits: oc.bits,
							CompressionThreshold:  oc.threshold,
						})
						for i, cc := range closeCasesFor(oc, comp, lib.raw) {
							dctx, cancel := context.WithTimeout(ctx, interopWait)
							pc, info, err := lib.dial(dctx, url, peerCfg{comp: comp, subprotocols: []string{"v1.interop", "v2.interop"},
								header: interopRequestHeader("http://peer.example")})
							cancel()
							if err != nil {
								t.Fatalf("%s's dial: %v", lib.name, err)
							}
							a := <-conns
							c := a.c
							done := make(chan peerEvent, 1)
							go peerSession(pc, done)
							if i == 0 {
								if got := c.Subprotocol(); got != "v2.interop" || info.subprotocol != got {
									t.Errorf("subprotocol: ours %q, %s's %q, want v2.interop", got, lib.name, info.subprotocol)
								}
								if got := info.header.Get("X-Reply"); info.header != nil && got != "response" {
									t.Errorf("%s saw X-Reply %q", lib.name, got)
								}
								switch err := checkAnswer(a.offer, info.extensions); {
								case info.extensions == "?":
									// nbio's client does not say what it settled.
								case err != nil:
									t.Error(err)
								case oc.mode != ours.CompressionDisabled && comp != "" && info.extensions == "":
									t.Logf("offer %q (%q) declined", comp, a.offer)
								}
								driveEcho(t, c, skipSizes(lib.name), j < 2, pingsFor(lib, info.extensions, "client_no_context_takeover"), done)
							}
							driveClose(t, c, cc, done)
							c.CloseNow()
						}
					})
				}
			}
			// A page from another origin is refused.
			dctx, cancel := context.WithTimeout(ctx, interopWait)
			defer cancel()
			url, _ := interopServer(t, nil)
			if pc, _, err := lib.dial(dctx, url, peerCfg{header: interopRequestHeader("http://evil.example")}); err == nil {
				pc.abort()
				t.Errorf("%s's dial from another origin succeeded", lib.name)
			}
		})
	}
}

// TestInteropClient runs our Dial with each other library's server.
func TestInteropClient(t *testing.T) {
	t.Parallel()
	for _, lib := range peerLibs {
		t.Run(lib.name, func(t *testing.T) {
			t.Parallel()
			skipRacy(t, lib.name)
			for j, comp := range lib.comps {
				if raceEnabled && j >= 4 {
					break // gobwas's many answers, slow under the race detector
				}
				type served struct {
					done chan peerEvent
					info peerInfo
				}
				conns := make(chan served, 1)
				url := lib.serve(t, peerCfg{comp: comp, subprotocols: []string{"v2.interop", "v1.interop"},
					header: http.Header{"X-Reply": {"response"}}}, func(pc peerConn, info peerInfo) {
					done := make(chan peerEvent, 1)
					go peerSession(pc, done)
					conns <- served{done, info}
				})
				for _, oc := range ourComps {
					t.Run(fmt.Sprintf("%v/%q", oc, comp), func(t *testing.T) {
						for i, cc := range closeCasesFor(oc, comp, lib.raw) {
							ctx, cancel := context.WithTimeout(context.Background(), interopWait)
							c, resp, err := ours.Dial(ctx, url, &ours.DialOptions{
								Header:                interopRequestHeader("http://peer.example"),
								Subprotocols:          []string{"v1.interop", "v2.interop"},
								Compression:           oc.mode,
								CompressionWindowBits: oc.bits,
								CompressionThreshold:  oc.threshold,
							})
							cancel()
							// The server hands on every connection it
							// answered with 101, whether Dial took it or not.
							var a served
							select {
							case a = <-conns:
							case <-time.After(interopWait):
								t.Fatalf("%s's server answered no handshake; Dial: %v", lib.name, err)
							}
							if bad := checkAnswer(a.info.offer, a.info.extensions); bad != nil {
								// The server broke RFC 7692: Dial must fail.
								if err == nil {
									t.Fatalf("Dial took %v", bad)
								}
								checkPrefix(t, err)
								t.Logf("%s's answer breaks RFC 7692, refused: %v", lib.name, err)
								select {
								case <-a.done:
								case <-time.After(interopWait):
									t.Errorf("%s's server saw no end of the connection Dial refused", lib.name)
								}
								return
							}
							if err != nil {
								t.Fatalf("Dial: %v", err)
							}
							if i == 0 {
								if got := c.Subprotocol(); got == "" || a.info.subprotocol != got {
									t.Errorf("subprotocol: ours %q, %s's %q", got, lib.name, a.info.subprotocol)
								}
								if got := resp.Header.Get("X-Reply"); got != "response" {
									t.Errorf("X-Reply %q", got)
								}
								if got := resp.Header.Get("Sec-WebSocket-Extensions"); strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(a.info.extensions, " ", "") {
									t.Errorf("extensions: we saw %q, %s answered %q", got, lib.name, a.info.extensions)
								}
								driveEcho(t, c, skipSizes(lib.name), j < 2, pingsFor(lib, a.info.extensions, "server_no_context_takeover"), a.done)
							}
							driveClose(t, c, cc, a.done)
							c.CloseNow()
						}
					})
				}
			}
		})
	}
}
