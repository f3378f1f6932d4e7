package flatetest

import (
	"bytes"
	stdflate "compress/flate"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestInflater checks that the reference inflater decodes streams from
// compress/flate and catches what it is there to catch: by default a
// distance beyond the window, a final block, a message cut short; with
// Lax, it takes a final block and reports where input runs out, and a
// distance beyond the window after the bytes before it.
func TestInflater(t *testing.T) {
	t.Parallel()
	unit := Random(RNG(12), 300)
	data := bytes.Repeat(unit, 10)
	stream := func(final bool) []byte {
		var b bytes.Buffer
		w, _ := stdflate.NewWriter(&b, stdflate.BestSpeed)
		w.Write(data)
		if final {
			w.Close()
		} else {
			w.Flush()
		}
		return b.Bytes()
	}
	tests := []struct {
		name   string
		lax    bool
		window int
		in     []byte
		want   []byte // what it decodes to
		err    string // in the error; "" for none
		is     error  // what the error wraps, if anything
	}{
		{"in window", false, 32768, stream(false), data, "", nil},
		{"beyond window", false, 256, stream(false), nil, "beyond the window of 256", ErrBeyondWindow},
		{"final block", false, 32768, stream(true), nil, "final block", nil},
		{"cut short", false, 32768, stream(false)[:100], nil, "input ends inside a block", nil},
		{"lax, final block", true, 32768, append(stream(true), "junk"...), data, "", nil},
		{"lax, sync flush", true, 32768, stream(false), data, "unexpected EOF", io.ErrUnexpectedEOF},
		{"lax, beyond window", true, 256, stream(false), nil, "beyond the window of 256", ErrBeyondWindow},
	}
	for _, tt := range tests {
		z := &Inflater{Window: tt.window, Lax: tt.lax}
		got, err := z.Message(tt.in)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.err)
		case tt.is != nil && !errors.Is(err, tt.is):
			t.Errorf("%s: error %v does not wrap %v", tt.name, err, tt.is)
		case tt.want != nil && !bytes.Equal(got, tt.want):
			t.Errorf("%s: decoded %d bytes, want %d", tt.name, len(got), len(tt.want))
		case tt.lax && tt.want == nil && (len(got) < len(unit) || !bytes.HasPrefix(data, got)):
			// The first copy of unit is all literals: the failing
			// reference comes after it.
			t.Errorf("%s: decoded %d bytes before the error, want at least %d of the data", tt.name, len(got), len(unit))
		}
	}
}
