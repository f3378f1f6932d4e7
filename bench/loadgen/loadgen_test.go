package loadgen

import (
	"bytes"
	"strings"
	"testing"
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
