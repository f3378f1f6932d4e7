// Command client talks to a WebSocket server from a terminal: it sends
// each line of standard input as a text message and prints each message
// that arrives on a line of standard output, binary ones as
// "binary (N bytes): <hex>".
//
//	go run ./examples/client [flags] ws://127.0.0.1:8080/ws
//
// A text message is printed with its control characters escaped as in a
// Go string literal (ESC as \x1b, CR as \r, U+009B as \u009b), newline and
// tab aside, so that a server cannot move the cursor, retitle the terminal
// or clear the screen with escape sequences; the rest of the text,
// non-ASCII included, is printed as it came. It is so whether standard
// output is a terminal or not: what goes to a file or a pipe often ends up
// on one later (cat, less -R, tail -f). A backslash is printed as it is,
// so that \x1b may also be those four characters: -raw prints text as it
// came, for a program that wants the exact bytes. Binary messages, in
// hex, need no escaping.
//
// At the end of input, or on SIGINT (Ctrl-C) or SIGTERM, it closes the
// connection with 1000 (normal closure) and waits, at most 5 seconds, for
// the server's close frame; a second signal ends it at once. What ended
// the connection is written on standard error.
//
// When standard output can no longer be written, its reader gone as in
// "client URL | head -1", the client closes the connection with 1001
// (going away), the code of an endpoint that leaves before the
// conversation is over, as a browser leaving a page does; 1000 would say
// that it had done what it came for. It then exits with 1, where cat dies
// of SIGPIPE: either way a pipeline under "set -o pipefail" fails, and
// what came after was not printed.
//
// Flags:
//
//	-H 'Name: value'      a request header; repeat for more
//	-origin URL           the Origin header
//	-subprotocol NAME     a subprotocol to offer; repeat for more, in order of preference
//	-compression MODE     offer permessage-deflate: off (the default), no-takeover or takeover
//	-insecure             skip the verification of the server's TLS certificate (wss://)
//	-http2                open the WebSocket over HTTP/2 (RFC 8441): h2 by ALPN for wss://,
//	                      h2c with prior knowledge for ws://; fail if the server does not offer it
//	-handshake-timeout D  give up on a handshake not done within D (default 10s)
//	-interval D           send the time every D instead of reading standard input
//	-raw                  print text messages as they came, control characters and
//	                      escape sequences included
//	-reconnect            after a connection ends abnormally, or the server goes away
//	                      (1001, as a server restarting sends), dial again, waiting
//	                      longer after each failure (up to a minute), until the input ends;
//	                      a line read meanwhile is sent once the connection is back; the
//	                      wait starts short again only after a connection that lasted a minute
//
// The exit code says how it ended:
//
//	0  the closing handshake completed with 1000 (normal closure), 1001
//	   (going away) or no code, whichever side began it, and no error
//	   cut standard input short; with -reconnect, a server's 1001 is
//	   dialed again, and ends with 0 if the input or a signal ends
//	   before a connection is back
//	1  the handshake failed or timed out (but for a redial after a
//	   server's 1001, as 0 says), the server broke the protocol,
//	   closed with another code or did not answer our close, the
//	   connection was lost, standard input could not be read to its
//	   end (a line over 1 MiB, say), or standard output could not be
//	   written
//	2  the command line is wrong
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/examples/internal/signals"
)

const (
	// writeTimeout bounds each message sent, so that a server that stops
	// reading ends the session instead of blocking it.
	writeTimeout = 10 * time.Second

	// closeTimeout bounds the wait for the server's close frame.
	closeTimeout = 5 * time.Second

	// maxHeaderBytes bounds the server's handshake response header; a
	// WebSocket handshake needs far less.
	maxHeaderBytes = 64 << 10

	// maxLine is the longest line read from standard input.
	maxLine = 1 << 20

	// firstRetry and lastRetry bound the waits between redials. The wait
	// starts again from firstRetry only after a connection that lasted
	// stableAfter: a server that accepts and drops at once (one that
	// closes with 1013, try again later, say) is dialed ever more slowly.
	firstRetry  = 500 * time.Millisecond
	lastRetry   = time.Minute
	stableAfter = time.Minute
)

// config is what the command line asks for.
type config struct {
	url              string
	shown            string // url, its password hidden
	opts             *websocket.DialOptions
	handshakeTimeout time.Duration
	interval         time.Duration // 0: read standard input
	reconnect        bool
	raw              bool // print text messages unescaped
}

func main() {
	log.SetFlags(0)
	cfg := config{opts: &websocket.DialOptions{Header: http.Header{}, CloseTimeout: closeTimeout}}
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: client [flags] URL")
		flag.PrintDefaults()
	}
	flag.Func("H", "request header `Name: value` (repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return errors.New(`want "Name: value"`)
		}
		cfg.opts.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		return nil
	})
	origin := flag.String("origin", "", "Origin header")
	flag.Func("subprotocol", "subprotocol to offer (repeatable, in order of preference)", func(s string) error {
		cfg.opts.Subprotocols = append(cfg.opts.Subprotocols, s)
		return nil
	})
	flag.TextVar(&cfg.opts.Compression, "compression", websocket.CompressionDisabled, "offer permessage-deflate: off, no-takeover or takeover")
	insecure := flag.Bool("insecure", false, "skip the verification of the server's TLS certificate")
	useHTTP2 := flag.Bool("http2", false, "open the WebSocket over HTTP/2: h2 for wss://, h2c for ws://")
	flag.DurationVar(&cfg.handshakeTimeout, "handshake-timeout", 10*time.Second, "give up on a handshake not done within this time")
	flag.DurationVar(&cfg.interval, "interval", 0, "send the time at this interval instead of reading standard input")
	flag.BoolVar(&cfg.raw, "raw", false, "print text messages as they came, control characters and escape sequences included")
	flag.BoolVar(&cfg.reconnect, "reconnect", false, "dial again after an abnormal close, or the server's 1001 (going away), until the input ends")
	flag.Parse()
	switch {
	case flag.NArg() == 0:
		usageError("a URL is needed")
	case flag.NArg() > 1:
		usageError(fmt.Sprintf("unexpected argument %q after the URL: flags go before it", flag.Arg(1)))
	case cfg.interval < 0:
		usageError("-interval must not be negative")
	case cfg.handshakeTimeout <= 0:
		usageError("-handshake-timeout must be positive")
	}
	cfg.url = flag.Arg(0)
	u, err := checkURL(cfg.url)
	if err != nil {
		usageError(err.Error())
	}
	cfg.shown = u.Redacted() // no password on the terminal
	if *useHTTP2 {
		cfg.opts.HTTP2 = websocket.HTTP2Required
	}
	if *origin != "" {
		cfg.opts.Header.Set("Origin", *origin)
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxResponseHeaderBytes = maxHeaderBytes
	if *insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	cfg.opts.HTTPClient = &http.Client{Transport: t}

	// With SIGPIPE notified, a write to standard output whose reader is
	// gone fails with EPIPE, which printMessages answers with a closing
	// handshake; by default Go ends the program with SIGPIPE for fd 1
	// and 2 (see os/signal, SIGPIPE). The signals themselves are not read.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	ctx := signals.Context() // a second signal kills at once
	os.Exit(run(ctx, cfg))
}

// usageError reports a wrong flag value as the flag package reports a
// wrong flag, and exits with 2.
func usageError(msg string) {
	fmt.Fprintln(flag.CommandLine.Output(), msg)
	flag.Usage()
	os.Exit(2)
}

// checkURL parses the URL to dial: one that is no URL, or names no
// WebSocket server (no ws or wss scheme, or no host), is a wrong command
// line, as a typo such as "localhost:8080/ws" makes, rather than a
// handshake that failed.
func checkURL(rawURL string) (*url.URL, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not the URL, which may hold a password.
		if ue, ok := err.(*url.Error); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("invalid URL: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "wss", "http", "https":
	default:
		return nil, fmt.Errorf("URL scheme %q is not ws or wss (nor http or https)", u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %q has no host", u.Redacted())
	}
	return u, nil
}

// run connects, and reconnects if asked to, until the input ends or ctx
// does, and returns the exit code.
func run(ctx context.Context, cfg config) int {
	lines, inputDone, inputErr := input(cfg.interval)
	c, err := dial(ctx, cfg)
	wait := firstRetry
	wentAway := false // the last connection ended with the server's 1001
	for err == nil {
		start := time.Now()
		err = converse(ctx, c, cfg.raw, lines, inputDone)
		log.Print(err)
		if errors.As(err, new(*outputError)) {
			return 1 // what comes can no longer be printed: no redial
		}
		wentAway = cfg.reconnect && goingAway(ctx, err, inputDone)
		if cleanClose(err) && !wentAway {
			if inputErr.Load() != nil {
				return 1 // the rest of the input was not sent
			}
			return 0
		}
		if !cfg.reconnect || ended(ctx, inputDone) {
			return 1 // nothing more to send: no reason to dial again
		}
		if time.Since(start) >= stableAfter {
			wait = firstRetry
		}
		c, err = redial(ctx, cfg, inputDone, &wait)
	}
	log.Print(err)
	if wentAway && (err == errInputEnded || err == errInterrupted) && inputErr.Load() == nil {
		// The server went away cleanly, with every line sent, and
		// nothing is left to send: as without -reconnect.
		return 0
	}
	return 1
}

// input returns the lines to send, a channel closed once they are all
// taken, and where the error that ended them early is put before it is
// closed: the lines of standard input, or the time every interval, in
// which case they never end.
func input(interval time.Duration) (<-chan string, <-chan struct{}, *atomic.Pointer[error]) {
	lines := make(chan string)
	inputErr := new(atomic.Pointer[error])
	if interval > 0 {
		go func() {
			for t := range time.Tick(interval) {
				lines <- t.Format(time.RFC3339Nano)
			}
		}()
		return lines, nil, inputErr
	}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		// Room for a line of maxLine and its "\r\n": a Scanner takes no
		// token as long as its buffer.
		sc.Buffer(nil, maxLine+2)
		var err error
		for sc.Scan() {
			if len(sc.Bytes()) > maxLine {
				err = bufio.ErrTooLong
				break
			}
			// A text message must be UTF-8: a line that is not, say in
			// Latin-1, goes with U+FFFD in place of its bad bytes.
			lines <- strings.ToValidUTF8(sc.Text(), "\uFFFD")
		}
		if err == nil {
			err = sc.Err()
		}
		if err != nil {
			if errors.Is(err, bufio.ErrTooLong) {
				err = fmt.Errorf("a line longer than %d bytes", maxLine)
			}
			err = fmt.Errorf("reading standard input: %w; the rest was not sent", err)
			inputErr.Store(&err)
			log.Print(err)
		}
		close(done)
	}()
	return lines, done, inputErr
}

// dial opens a connection, giving up after the handshake timeout.
func dial(ctx context.Context, cfg config) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.handshakeTimeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, cfg.url, cfg.opts)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("no handshake within %v: %w", cfg.handshakeTimeout, err)
	}
	if err != nil {
		// A refusal's error holds the start of the server's explanation.
		return nil, err
	}
	connected := "connected to " + cfg.shown
	if resp.ProtoMajor == 2 {
		connected += " over HTTP/2"
	}
	if p := c.Subprotocol(); p != "" {
		connected += ", subprotocol " + p
	}
	if ext := resp.Header.Get("Sec-WebSocket-Extensions"); ext != "" {
		connected += ", extensions " + ext
	}
	log.Print(connected)
	return c, nil
}

// What ends a redial before it connects.
var (
	errInterrupted = errors.New("not reconnected: interrupted")
	errInputEnded  = errors.New("not reconnected: end of input")
)

// redial dials again after a wait that grows with each failure, with
// jitter so that clients dropped together do not return together, until
// it connects or the input or ctx ends. wait is the next wait, and stays
// grown for the next redial.
func redial(ctx context.Context, cfg config, inputDone <-chan struct{}, wait *time.Duration) (*websocket.Conn, error) {
	for {
		d := *wait/2 + rand.N(*wait/2)
		*wait = min(2**wait, lastRetry)
		log.Printf("reconnecting in %v", d.Round(time.Millisecond))
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, errInterrupted
		case <-inputDone:
			return nil, errInputEnded
		}
		c, err := dial(ctx, cfg)
		if err == nil {
			return c, nil
		}
		log.Print(err)
	}
}

// converse sends the lines and prints the messages that arrive until the
// connection ends, and returns the error that ended it. At the end of the
// input or of ctx it closes the connection normally first. Raw prints
// text messages unescaped.
func converse(ctx context.Context, c *websocket.Conn, raw bool, lines <-chan string, inputDone <-chan struct{}) error {
	defer c.CloseNow()
	ended := make(chan error, 1)
	go func() { ended <- printMessages(c, raw) }()
	interrupted := false // ctx ended a write
loop:
	for {
		select {
		case err := <-ended:
			return err
		case <-inputDone:
			break loop
		case <-ctx.Done():
			break loop
		case line := <-lines:
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.Write(wctx, websocket.MessageText, []byte(line))
			cancel()
			switch {
			case err == nil:
			case ctx.Err() != nil:
				interrupted = true
				break loop
			case errors.Is(err, context.DeadlineExceeded):
				c.CloseNow() // if the cut write has not
				<-ended
				return fmt.Errorf("a message could not be sent within %v, the server taking nothing: closed without a closing handshake", writeTimeout)
			case errors.Is(err, websocket.ErrClosed):
				return <-ended // the reader tells why
			default:
				c.CloseNow()
				<-ended
				return err
			}
		}
	}
	// The messages the server sent before it saw our close frame are
	// still printed, up to its own close frame.
	if err := c.CloseWrite(websocket.StatusNormalClosure, ""); err != nil {
		err = <-ended // it had ended already: the reader says how
		if interrupted && errors.Is(err, websocket.ErrClosed) {
			// Our own cut write ended it: a server that stopped
			// reading leaves no way to send a close frame.
			return errors.New("interrupted while sending a message the server was not taking: closed without a closing handshake")
		}
		return err
	}
	err := <-ended
	if errors.Is(err, websocket.ErrClosed) {
		// Only the close timeout closes the connection under the reader now.
		return fmt.Errorf("no answer to our close frame within %v", closeTimeout)
	}
	return err
}

// printMessages prints the messages that arrive until reading or
// printing fails, and returns why it did. Raw prints text messages
// unescaped.
func printMessages(c *websocket.Conn, raw bool) error {
	var line []byte // reused from message to message, up to 64 KiB
	for {
		typ, p, err := c.Read(context.Background())
		if err != nil {
			return err
		}
		line = appendMessage(line[:0], typ, p, raw)
		if _, err := os.Stdout.Write(line); err != nil {
			// Nothing more can be printed: leave with 1001 (going away),
			// as the package doc says why. Close reads, and drops, what
			// the server sends until its close frame.
			return &outputError{write: err, close: c.Close(websocket.StatusGoingAway, "")}
		}
		if cap(line) > 64<<10 {
			line = nil // not held for good after a large message
		}
	}
}

// outputError ends a connection whose messages can no longer be printed.
type outputError struct {
	write error // why standard output failed
	close error // what the closing handshake that followed returned
}

func (e *outputError) Error() string {
	if e.close != nil {
		return fmt.Sprintf("%v; closing the connection: %v", e.write, e.close)
	}
	return fmt.Sprintf("%v; connection closed", e.write)
}

// appendMessage appends to b the line that shows a message: a binary one
// in hex, a text one as appendEscaped shows it, or as it came if raw.
func appendMessage(b []byte, typ websocket.MessageType, p []byte, raw bool) []byte {
	switch {
	case typ == websocket.MessageBinary:
		b = fmt.Appendf(b, "binary (%d bytes): %x", len(p), p)
	case raw:
		b = append(b, p...)
	default:
		b = appendEscaped(b, p)
	}
	return append(b, '\n')
}

// appendEscaped appends text to b with the characters a terminal may act
// on escaped: the C0 controls but newline and tab, DEL, and the C1
// controls (U+0080-U+009F; some terminals take U+009B as ESC [). The
// escape is Go's, as strconv.QuoteRune writes it (\x1b, \r, \u009b),
// rather than U+FFFD for all: it says which character came, as one
// debugging a protocol wants (a stray \r, or an ANSI color), and it is how
// the library shows a close frame's reason. Text is valid UTF-8, as Read
// checks.
func appendEscaped(b, text []byte) []byte {
	for len(text) > 0 {
		r, n := utf8.DecodeRune(text)
		if r < ' ' && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f {
			q := strconv.QuoteRune(r) // quoted: '\x1b'
			b = append(b, q[1:len(q)-1]...)
		} else {
			b = append(b, text[:n]...)
		}
		text = text[n:]
	}
	return b
}

// goingAway reports whether err is the server's close frame with 1001
// (going away: a restart, say), sent while the input and ctx went on, so
// that the close was the server's own.
func goingAway(ctx context.Context, err error, inputDone <-chan struct{}) bool {
	return !ended(ctx, inputDone) && websocket.CloseStatus(err) == websocket.StatusGoingAway
}

// ended reports whether the input or ctx has ended.
func ended(ctx context.Context, inputDone <-chan struct{}) bool {
	select {
	case <-inputDone:
		return true
	default:
		return ctx.Err() != nil
	}
}

// cleanClose reports whether err is the server's close frame with 1000,
// 1001, or no code (1005: a close frame may carry none, and one that
// answers ours often does not). An error that wraps ErrClosed may hold a
// close frame of ours.
func cleanClose(err error) bool {
	code := websocket.CloseStatus(err)
	return !errors.Is(err, websocket.ErrClosed) &&
		(code == websocket.StatusNormalClosure || code == websocket.StatusGoingAway || code == websocket.StatusNoStatusRcvd)
}
