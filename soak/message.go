package main

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand/v2"

	"github.com/rfc6455/websocket"
)

// A soak message is a header of headerLen ASCII hex digits, then a body:
// the connection's id (8 digits), the message's sequence number on that
// connection, counted from 0 (16), and the CRC-32 (IEEE) of the body (8).
// The header is ASCII so that text messages stay UTF-8; the server echoes
// the message whole, so the echo carries the number and the checksum back.
const headerLen = 32

// maxBody is the largest body a client sends.
const maxBody = 64 << 10

// header is a message's header, decoded.
type header struct {
	conn uint32
	seq  uint64
	sum  uint32
}

// putHeader writes h into the first headerLen bytes of msg.
func putHeader(msg []byte, h header) {
	var b [16]byte
	binary.BigEndian.PutUint32(b[0:], h.conn)
	binary.BigEndian.PutUint64(b[4:], h.seq)
	binary.BigEndian.PutUint32(b[12:], h.sum)
	hex.Encode(msg[:headerLen], b[:])
}

var errBadHeader = errors.New("no valid soak header")

// parse splits msg into its header and body, and reports an error when the
// header is malformed or the body does not match its checksum.
func parse(msg []byte) (header, []byte, error) {
	var b [16]byte
	if len(msg) < headerLen {
		return header{}, nil, errBadHeader
	}
	if _, err := hex.Decode(b[:], msg[:headerLen]); err != nil {
		return header{}, nil, errBadHeader
	}
	h := header{
		conn: binary.BigEndian.Uint32(b[0:]),
		seq:  binary.BigEndian.Uint64(b[4:]),
		sum:  binary.BigEndian.Uint32(b[12:]),
	}
	body := msg[headerLen:]
	if crc32.ChecksumIEEE(body) != h.sum {
		return h, body, errors.New("body does not match its checksum")
	}
	return h, body, nil
}

// pickSize chooses a body size: mostly small, as chat and game traffic
// are, with a tail up to maxBody (about 2.6 KiB on average).
func pickSize() int {
	switch x := rand.IntN(100); {
	case x < 60:
		return rand.IntN(128)
	case x < 85:
		return 128 + rand.IntN(2<<10-128)
	case x < 97:
		return 2<<10 + rand.IntN(16<<10-2<<10)
	default:
		return 16<<10 + rand.IntN(maxBody-16<<10+1)
	}
}

// words make up text bodies: compressible, and with characters of two,
// three and four bytes, which a fragmented message splits at any byte.
var words = []string{
	"soak", "message", "échange", "ключ", "数据", "🙂", "Ωmega", "the", "a",
	"connection", "κείμενο", "≠", "naïve", "𝄞", "fin",
}

// fillBody fills body for a message of type typ: UTF-8 text of words for
// text; for binary, either random bytes or a repeated pattern with a
// little noise, so that compression meets both.
func fillBody(typ websocket.MessageType, body []byte) {
	if typ == websocket.MessageText {
		i := 0
		for i < len(body) {
			w := words[rand.IntN(len(words))]
			if len(body)-i <= len(w) {
				for ; i < len(body); i++ {
					body[i] = 'a' + byte(rand.IntN(26))
				}
				break
			}
			i += copy(body[i:], w)
			body[i] = ' '
			i++
		}
		return
	}
	if rand.IntN(2) == 0 {
		for i := 0; i < len(body); i += 8 {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], rand.Uint64())
			copy(body[i:], b[:])
		}
		return
	}
	var pattern [16]byte
	binary.LittleEndian.PutUint64(pattern[:], rand.Uint64())
	binary.LittleEndian.PutUint64(pattern[8:], rand.Uint64())
	for i := range body {
		body[i] = pattern[i%len(pattern)]
	}
	for range len(body) / 64 {
		body[rand.IntN(len(body))] = byte(rand.Uint32())
	}
}

// writePieces writes p as one message through a Writer, in two to six
// Writes of random lengths.
func writePieces(ctx context.Context, c *websocket.Conn, typ websocket.MessageType, p []byte) error {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	for n := 1 + rand.IntN(5); n > 0 && len(p) > 0; n-- {
		k := rand.IntN(len(p) + 1)
		if _, err := w.Write(p[:k]); err != nil {
			w.Close()
			return err
		}
		p = p[k:]
	}
	if _, err := w.Write(p); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// keep returns buf for the next message, unless it grew large: a quiet
// connection should not hold 64 KiB.
func keep(buf []byte) []byte {
	if cap(buf) > 8<<10 {
		return nil
	}
	return buf
}
