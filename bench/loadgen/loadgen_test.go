package loadgen

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	// RFC 6455 §5.7: a single-frame masked text message, "Hello".
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	if got, want := string(AppendFrame(nil, 1, []byte("Hello"), key)), "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"; got != want {
		t.Errorf("Hello frame = %q, want %q", got, want)
	}
	// The header of each length encoding, at its boundaries.
	zero := [4]byte{}
	for _, tt := range []struct {
		n    int
		head string
	}{
		{0, "\x82\x80"},
		{125, "\x82\xfd"},
		{126, "\x82\xfe\x00\x7e"},
		{65535, "\x82\xfe\xff\xff"},
		{65536, "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00"},
	} {
		p := bytes.Repeat([]byte{'x'}, tt.n)
		f := AppendFrame([]byte("prefix"), 2, p, zero)
		want := "prefix" + tt.head + "\x00\x00\x00\x00" + strings.Repeat("x", tt.n)
		if string(f) != want {
			t.Errorf("%d-byte frame starts %q, want %q", tt.n, f[:min(len(f), 20)], want[:min(len(want), 20)])
		}
	}
}

func TestNewMessage(t *testing.T) {
	t.Parallel()
	m := NewMessage([]byte("abc"), 3)
	if m.InFlight() != 3 || len(m.batch) != 3*(2+4+3) {
		t.Fatalf("InFlight %d, batch of %d bytes; want 3 and 27", m.InFlight(), len(m.batch))
	}
	// Each copy unmasks to the payload.
	for i := range 3 {
		f := m.batch[9*i : 9*i+9]
		if f[0] != 0x82 || f[1] != 0x83 {
			t.Errorf("copy %d header %q, want \"\\x82\\x83\"", i, f[:2])
		}
		for j := range 3 {
			if got := f[6+j] ^ f[2+j]; got != "abc"[j] {
				t.Errorf("copy %d byte %d unmasks to %q, want %q", i, j, got, "abc"[j])
			}
		}
	}
}

// TestAnswerPings sends pings to AnswerPings and checks each pong's bytes,
// then that anything else ends it with an error saying what came.
func TestAnswerPings(t *testing.T) {
	t.Parallel()
	pong := func(p string) string { return string(AppendFrame(nil, 10, []byte(p), pongKey)) }
	tests := []struct {
		name, in, out, err string
	}{
		{"pings", "\x89\x03abc\x89\x00", pong("abc") + pong(""), "EOF"},
		{"data", "\x89\x01a\x82\x01x", pong("a"), "unexpected frame, opcode 2"},
		{"close", "\x88\x04\x03\xe9ok", "", `server closed the connection: 1001 "ok"`},
		{"pong", "\x8a\x00", "", "unexpected control frame, opcode 10"},
		{"fragmented ping", "\x09\x00", "", "unexpected control frame, opcode 9"},
		{"masked", "\x89\x80\x00\x00\x00\x00", "", "server sent a masked frame"},
	}
	for _, tt := range tests {
		client, server := net.Pipe()
		deadline := time.Now().Add(10 * time.Second)
		client.SetDeadline(deadline)
		server.SetDeadline(deadline)
		c := &Conn{nc: client, size: 512}
		var pings atomic.Int64
		errc := make(chan error, 1)
		go func() { errc <- c.AnswerPings(make(chan struct{}), &pings) }()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			server.Write([]byte(tt.in))
		}()
		got := make([]byte, len(tt.out))
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatalf("%s: reading the pongs: %v", tt.name, err)
		}
		if string(got) != tt.out {
			t.Errorf("%s: client sent %q, want %q", tt.name, got, tt.out)
		}
		// The server hangs up once the client took in all it wrote (one
		// read does, into 512 bytes): a client still reading meets the end.
		<-wrote
		server.Close()
		if err := <-errc; err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%s: AnswerPings returned %v, want an error holding %q", tt.name, err, tt.err)
		}
		if want := int64(strings.Count(tt.out, "\x8a")); pings.Load() != want {
			t.Errorf("%s: %d pings counted, want %d", tt.name, pings.Load(), want)
		}
		client.Close()
		server.Close()
	}
}

// TestAnswerPingsDone shows that closing done, then the connection, ends
// AnswerPings without an error.
func TestAnswerPingsDone(t *testing.T) {
	t.Parallel()
	client, server := net.Pipe()
	defer server.Close()
	c := &Conn{nc: client, size: 512}
	done := make(chan struct{})
	errc := make(chan error, 1)
	var pings atomic.Int64
	go func() { errc <- c.AnswerPings(done, &pings) }()
	close(done)
	client.Close()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("AnswerPings after done: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AnswerPings did not return within 10s of its connection's close")
	}
}
