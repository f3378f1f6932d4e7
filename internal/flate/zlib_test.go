package flate

import (
	"bytes"
	"context"
	"encoding/binary"
	"os/exec"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/flate/flatetest"
)

// TestWriterZlib has zlib (through python3) inflate the Writer's
// output for every window size, as one stream with takeover and message by
// message without, with zlib's window set to the Writer's. Each message
// goes over stripped of its 00 00 ff ff tail, as RFC 7692 §7.2.1 sends it,
// and the script puts the tail back, as a receiver does (§7.2.2).
func TestWriterZlib(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	// Reads streams, each: window bits, takeover flag, message count, and
	// the length-prefixed messages; writes the inflated messages,
	// length-prefixed.
	const script = `
import struct, sys, zlib
data, pos, out = sys.stdin.buffer.read(), 0, bytearray()
while pos < len(data):
    bits, takeover, count = struct.unpack_from("<BBI", data, pos)
    pos += 6
    d = None
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        if d is None or not takeover:
            d = zlib.decompressobj(-bits)
        m = d.decompress(data[pos:pos + n] + b"\x00\x00\xff\xff")
        pos += n
        out += struct.pack("<I", len(m)) + m
sys.stdout.buffer.write(out)
`
	rng := flatetest.RNG(6)
	text := flatetest.Text(rng, 100000)
	msgs := [][]byte{{}, []byte("Hello"), text[:30000], flatetest.Random(rng, 3000), text[30000:31000], bytes.Repeat([]byte("ab"), 40000), flatetest.JSON(rng, 5000), text[31000:]}
	var in []byte
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			in = append(in, byte(bits), 0)
			if takeover {
				in[len(in)-1] = 1
			}
			in = binary.LittleEndian.AppendUint32(in, uint32(len(msgs)))
			for _, out := range compressMessages(bits, takeover, msgs, nil, 0) {
				out = bytes.TrimSuffix(out, []byte("\x00\x00\xff\xff"))
				in = binary.LittleEndian.AppendUint32(in, uint32(len(out)))
				in = append(in, out...)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", script)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	got, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v: %s", err, stderr.Bytes())
	}
	for bits := MinWindowBits; bits <= MaxWindowBits; bits++ {
		for _, takeover := range []bool{true, false} {
			for i, m := range msgs {
				if len(got) < 4 || len(got) < 4+int(binary.LittleEndian.Uint32(got)) {
					t.Fatalf("window bits %d, takeover %t: output ends before message %d", bits, takeover, i)
				}
				n := int(binary.LittleEndian.Uint32(got))
				if !bytes.Equal(got[4:4+n], m) {
					t.Errorf("window bits %d, takeover %t: zlib inflated message %d to %d bytes %.30q, want %d bytes %.30q", bits, takeover, i, n, got[4:4+n], len(m), m)
				}
				got = got[4+n:]
			}
		}
	}
	if len(got) != 0 {
		t.Errorf("%d bytes of output left over", len(got))
	}
}
