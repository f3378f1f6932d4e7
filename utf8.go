package websocket

import (
	"encoding/binary"
	"unicode/utf8"
)

// utf8Validator checks a text message as it arrives, in pieces of any size
// (RFC 6455 §8.1). It rejects at the first byte that no continuation could
// make valid, so a connection sending a bad message is failed before the
// rest of the message arrives.
//
// It is a deterministic automaton over the well-formed byte sequences of
// the Unicode Standard, Table 3-7: surrogates (ED A0..BF) and code points
// above U+10FFFF (F4 90..) are rejected at their second byte, overlong forms
// (C0, C1, E0 80..9F, F0 80..8F) at their first or second.
type utf8Validator struct {
	state uint8
}

// Automaton states. utf8Accept is the only state in which a message may end.
const (
	utf8Accept  = iota // between characters
	utf8Need1          // one continuation byte 80..BF left
	utf8Need2          // two continuation bytes left
	utf8Need3          // three continuation bytes left
	utf8AfterE0        // next byte A0..BF, then one more
	utf8AfterED        // next byte 80..9F, then one more
	utf8AfterF0        // next byte 90..BF, then two more
	utf8AfterF4        // next byte 80..8F, then two more
	utf8Reject
	utf8States
)

// Byte classes: bytes that every state treats alike.
const (
	clsASCII   = iota // 00..7F
	clsCont8          // 80..8F
	clsCont9          // 90..9F
	clsContA          // A0..BF
	clsLead2          // C2..DF
	clsE0             // E0
	clsLead3          // E1..EC, EE..EF
	clsED             // ED
	clsF0             // F0
	clsLead4          // F1..F3
	clsF4             // F4
	clsInvalid        // C0, C1, F5..FF
	utf8Classes
)

var utf8Class = func() (t [256]uint8) {
	for i := range t {
		switch b := byte(i); {
		case b <= 0x7F:
			t[i] = clsASCII
		case b <= 0x8F:
			t[i] = clsCont8
		case b <= 0x9F:
			t[i] = clsCont9
		case b <= 0xBF:
			t[i] = clsContA
		case b <= 0xC1:
			t[i] = clsInvalid
		case b <= 0xDF:
			t[i] = clsLead2
		case b == 0xE0:
			t[i] = clsE0
		case b == 0xED:
			t[i] = clsED
		case b <= 0xEF:
			t[i] = clsLead3
		case b == 0xF0:
			t[i] = clsF0
		case b <= 0xF3:
			t[i] = clsLead4
		case b == 0xF4:
			t[i] = clsF4
		default:
			t[i] = clsInvalid
		}
	}
	return t
}()

var utf8Next = func() (t [utf8States][utf8Classes]uint8) {
	for s := range t {
		for c := range t[s] {
			t[s][c] = utf8Reject
		}
	}
	lead := &t[utf8Accept]
	lead[clsASCII] = utf8Accept
	lead[clsLead2] = utf8Need1
	lead[clsE0] = utf8AfterE0
	lead[clsLead3] = utf8Need2
	lead[clsED] = utf8AfterED
	lead[clsF0] = utf8AfterF0
	lead[clsLead4] = utf8Need3
	lead[clsF4] = utf8AfterF4
	for _, c := range []int{clsCont8, clsCont9, clsContA} {
		t[utf8Need1][c] = utf8Accept
		t[utf8Need2][c] = utf8Need1
		t[utf8Need3][c] = utf8Need2
	}
	t[utf8AfterE0][clsContA] = utf8Need1
	t[utf8AfterED][clsCont8] = utf8Need1
	t[utf8AfterED][clsCont9] = utf8Need1
	t[utf8AfterF0][clsCont9] = utf8Need2
	t[utf8AfterF0][clsContA] = utf8Need2
	t[utf8AfterF4][clsCont8] = utf8Need2
	return t
}()

// write feeds p to the validator. It returns false as soon as p makes the
// text invalid, whatever follows.
//
// Between characters, a long p is checked with utf8.Valid up to its last
// complete character, and only a character cut off at its end goes through
// the automaton; refusal stays per call, the finest grain the reads use.
func (v *utf8Validator) write(p []byte) bool {
	s := v.state
	for len(p) > 0 {
		if s == utf8Accept {
			if len(p) >= 64 {
				cut := len(p) - utf8Unfinished(p)
				if !utf8.Valid(p[:cut]) {
					v.state = utf8Reject
					return false
				}
				p = p[cut:]
			} else {
				for len(p) >= 8 && binary.LittleEndian.Uint64(p)&0x8080808080808080 == 0 {
					p = p[8:]
				}
			}
			if len(p) == 0 {
				break
			}
		}
		s = utf8Next[s][utf8Class[p[0]]]
		if s == utf8Reject {
			v.state = s
			return false
		}
		p = p[1:]
	}
	v.state = s
	return true
}

// utf8Unfinished returns how many bytes at the end of p are a character
// still missing continuation bytes: a lead byte followed by fewer than it
// announces. It is 0 when p ends between characters, or on bytes that are
// invalid anyway.
func utf8Unfinished(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		c := p[i]
		if c < 0x80 {
			return 0
		}
		if c >= 0xC0 {
			need := 2
			switch {
			case c >= 0xF8:
				need = 1
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			}
			if len(p)-i < need {
				return len(p) - i
			}
			return 0
		}
	}
	return 0
}

// complete reports whether the text so far ends between characters.
func (v *utf8Validator) complete() bool { return v.state == utf8Accept }

func (v *utf8Validator) reset() { v.state = utf8Accept }
