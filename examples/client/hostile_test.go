package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket"
)

// TestHostileServers runs the client against servers that misbehave, each
// written by hand on a raw TCP connection. Every one must end the client
// promptly with exit code 1, a reason on standard error and, once the
// handshake is done, the close frame RFC 6455 asks for; none may make it
// hold much memory.
func TestHostileServers(t *testing.T) {
	t.Parallel()
	const (
		// A binary frame that claims 2^40 bytes.
		hugeFrame = "\x82\x7f\x00\x00\x01\x00\x00\x00\x00\x00"
		// The RFC 6455 §5.7 text frame "Hello", masked, as only
		// clients may send.
		maskedFrame = "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
	)
	megabyteOfHeaders := strings.Repeat("X-Padding: "+strings.Repeat("p", 1012)+"\r\n", 1024)
	for _, tt := range []struct {
		name   string
		args   []string                                    // flags before the URL
		serve  func(t *testing.T, nc net.Conn, key string) // after the request was read
		stdout string
		stderr string        // what standard error must hold: the reason
		eof    bool          // close standard input at once
		within time.Duration // the longest the client may take; 0 means 3s
	}{
		{
			name:   "refused",
			serve:  respond("HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\nno way"),
			stderr: `websocket: handshake failed: server answered "403 Forbidden", not 101 Switching Protocols: "no way"`,
		},
		{
			name:   "wrong accept key",
			serve:  respond("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
			stderr: `websocket: handshake failed: Sec-WebSocket-Accept "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", want`,
		},
		{
			name:   "unoffered extension",
			serve:  upgrade("Sec-WebSocket-Extensions: permessage-deflate\r\n", "", 0),
			stderr: `websocket: handshake failed: server accepted extension "permessage-deflate", which was not offered`,
		},
		{
			name:   "unoffered subprotocol",
			args:   []string{"-subprotocol", "chat"},
			serve:  upgrade("Sec-WebSocket-Protocol: superchat\r\n", "", 0),
			stderr: `websocket: handshake failed: server chose subprotocol "superchat", which was not offered`,
		},
		{
			name:   "1 MiB of response headers",
			serve:  upgrade(megabyteOfHeaders, "", 0),
			stderr: "server response headers exceeded 65536 bytes",
		},
		{
			name:   "response trickled a byte a second",
			args:   []string{"-handshake-timeout", "1500ms"},
			serve:  trickle,
			stderr: "no handshake within 1.5s: websocket: dial ",
		},
		{
			name: "no answer",
			args: []string{"-handshake-timeout", "1s"},
			serve: func(t *testing.T, nc net.Conn, key string) {
				io.Copy(io.Discard, nc)
			},
			stderr: "no handshake within 1s: websocket: dial ",
		},
		{
			name:   "invalid UTF-8",
			serve:  upgrade("", "\x81\x05ok\xc3\x28!", websocket.StatusInvalidFramePayloadData),
			stderr: "websocket: text message is not valid UTF-8: connection failed with 1007 (invalid frame payload data)",
		},
		{
			name:   "close frame of 1 byte",
			serve:  upgrade("", "\x88\x01\x03", websocket.StatusProtocolError),
			stderr: "websocket: close frame payload of 1 byte: connection failed with 1002 (protocol error)",
		},
		{
			name:   "close code 1005 sent",
			serve:  upgrade("", "\x88\x02\x03\xed", websocket.StatusProtocolError),
			stderr: "websocket: invalid close code 1005: connection failed with 1002 (protocol error)",
		},
		{
			name:   "close code 999",
			serve:  upgrade("", "\x88\x02\x03\xe7", websocket.StatusProtocolError),
			stderr: "websocket: invalid close code 999: connection failed with 1002 (protocol error)",
		},
		{
			name:   "2^40-byte frame",
			serve:  upgrade("", "\x81\x02hi"+hugeFrame, websocket.StatusMessageTooBig),
			stdout: "hi\n",
			stderr: "websocket: message exceeds the read limit of 33554432 bytes: connection failed with 1009 (message too big)",
		},
		{
			name:   "masked frame",
			serve:  upgrade("", maskedFrame, websocket.StatusProtocolError),
			stderr: "websocket: masked frame from the server: connection failed with 1002 (protocol error)",
		},
		{
			name: "close not answered",
			serve: func(t *testing.T, nc net.Conn, key string) {
				io.WriteString(nc, switching(key)+"\r\n")
				io.Copy(io.Discard, nc)
			},
			eof:    true,
			stderr: "no answer to our close frame within 5s",
			within: closeTimeout + 2*time.Second,
		},
		{
			name:   "dropped without a close frame",
			serve:  upgrade("", "\x81\x02hi", 0),
			stdout: "hi\n",
			stderr: "websocket: connection lost: EOF",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			url := hostileServer(t, tt.serve)
			start := time.Now()
			cl := startClient(t, append(tt.args, url)...)
			inherited := ownPeakRSS() // no less than at the client's exec
			if tt.eof {
				cl.stdin.Close()
			}
			code := cl.exitCode(t, wait)
			took := time.Since(start)
			stderr := cl.stderr.String()
			if code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", code, stderr)
			}
			if tt.within == 0 {
				tt.within = 3 * time.Second
			}
			if took > tt.within {
				t.Errorf("client took %v to exit, want at most %v", took, tt.within)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr %q, want it to hold %q", stderr, tt.stderr)
			}
			if got := cl.stdout.String(); got != tt.stdout {
				t.Errorf("stdout %q, want %q", got, tt.stdout)
			}
			// The bound applies above the peak the child's report
			// inherits from this process (ownPeakRSS), which the tests
			// beside it, echoing 1 MiB lines, may have raised past it.
			rss := peakRSS(cl.cmd.ProcessState)
			if limit := max(maxRSS(), inherited+1<<20); rss > limit {
				t.Errorf("client's peak memory %d MiB, want at most %d MiB", rss>>20, limit>>20)
			}
			t.Logf("exit after %v, peak memory %.1f MiB, stderr:\n%s", took.Round(time.Millisecond), float64(rss)/(1<<20), stderr)
		})
	}
}

// maxRSS bounds the client's peak resident memory: well under the 32 MiB
// a message may hold, plus what the race detector takes.
func maxRSS() int64 {
	if raceEnabled {
		return 96 << 20
	}
	return 24 << 20
}

// hostileServer serves each connection to a loopback port with serve,
// once the handshake request has been read, and returns the ws:// URL.
// Connections are closed when serve returns or the test ends.
func hostileServer(t *testing.T, serve func(t *testing.T, nc net.Conn, key string)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				req, err := http.ReadRequest(bufio.NewReader(nc))
				if err != nil {
					t.Errorf("reading the handshake: %v", err)
					return
				}
				serve(t, nc, req.Header.Get("Sec-WebSocket-Key"))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// respond answers the handshake with response.
func respond(response string) func(*testing.T, net.Conn, string) {
	return func(t *testing.T, nc net.Conn, key string) {
		io.WriteString(nc, response)
	}
}

// upgrade answers the handshake with a 101 response holding the right
// Sec-WebSocket-Accept and extra headers, sends frames, and then expects
// the client's close frame with code (or none, for 0).
func upgrade(extra, frames string, code websocket.StatusCode) func(*testing.T, net.Conn, string) {
	return func(t *testing.T, nc net.Conn, key string) {
		if _, err := io.WriteString(nc, switching(key)+extra+"\r\n"+frames); err != nil || code == 0 {
			return
		}
		nc.SetReadDeadline(time.Now().Add(wait))
		if got, err := readClose(nc); err != nil {
			t.Errorf("reading the client's close frame: %v", err)
		} else if got != code {
			t.Errorf("client's close frame has code %v, want %v", got, code)
		}
	}
}

// switching is the start of a 101 response to the handshake with key.
func switching(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n"
}

// trickle sends a valid 101 response, one byte a second.
func trickle(t *testing.T, nc net.Conn, key string) {
	response := switching(key) + "\r\n"
	for i := range len(response) {
		if _, err := io.WriteString(nc, response[i:i+1]); err != nil {
			return
		}
		time.Sleep(time.Second)
	}
}

// readClose reads a masked close frame with a status code, as a client
// sends, and returns the code.
func readClose(r io.Reader) (websocket.StatusCode, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, err
	}
	if h[0] != 0x88 || h[1]&0x80 == 0 || h[1]&0x7f < 2 || h[1]&0x7f > 125 {
		return 0, fmt.Errorf("frame header %x is not a masked close frame with a code", h)
	}
	p := make([]byte, 4+h[1]&0x7f)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, err
	}
	for i := range p[4:] {
		p[4+i] ^= p[i%4]
	}
	return websocket.StatusCode(binary.BigEndian.Uint16(p[4:])), nil
}
