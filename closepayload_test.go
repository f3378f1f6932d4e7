package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClosePayloadParse(t *testing.T) {
	t.Parallel()
	reason123 := strings.Repeat("r", 123)
	type row struct {
		name    string
		payload string
		want    CloseError // when ok
		code    StatusCode // the *ProtocolError's code otherwise
	}
	rows := []row{
		{"empty", "", CloseError{Code: StatusNoStatusRcvd}, 0},
		{"1 byte", "\x03", CloseError{}, StatusProtocolError},
		{"1000 without reason", "\x03\xe8", CloseError{Code: 1000}, 0},
		{"1000 with reason", "\x03\xe8bye", CloseError{Code: 1000, Reason: "bye"}, 0},
		{"1001 with UTF-8 reason", "\x03\xe9κόσμε", CloseError{Code: 1001, Reason: "κόσμε"}, 0},
		{"123-byte reason", "\x03\xe8" + reason123, CloseError{Code: 1000, Reason: reason123}, 0},
		{"bad UTF-8 reason", "\x03\xe8\xff", CloseError{}, StatusInvalidFramePayloadData},
		{"surrogate in reason", "\x03\xe8ok\xed\xa0\x80", CloseError{}, StatusInvalidFramePayloadData},
		{"truncated character in reason", "\x03\xe8\xe2\x82", CloseError{}, StatusInvalidFramePayloadData},
		{"invalid code before bad reason", "\x03\xed\xff", CloseError{}, StatusProtocolError},
	}
	for _, code := range []StatusCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		p := string([]byte{byte(code >> 8), byte(code)})
		rows = append(rows, row{"valid " + code.String(), p, CloseError{Code: code}, 0})
	}
	for _, code := range []StatusCode{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		p := string([]byte{byte(code >> 8), byte(code)})
		rows = append(rows, row{"invalid " + code.String(), p, CloseError{}, StatusProtocolError})
		rows = append(rows, row{"invalid " + code.String() + " with reason", p + "x", CloseError{}, StatusProtocolError})
	}
	for _, tt := range rows {
		ce, err := parseClosePayload([]byte(tt.payload))
		if tt.code == 0 {
			if err != nil || ce != tt.want {
				t.Errorf("%s: parseClosePayload(%q) = %+v, %v; want %+v, nil", tt.name, tt.payload, ce, err, tt.want)
			}
			continue
		}
		var pe *ProtocolError
		if !errors.As(err, &pe) || pe.Code != tt.code {
			t.Errorf("%s: parseClosePayload(%q) = %+v, %v; want *ProtocolError with %v", tt.name, tt.payload, ce, err, tt.code)
		}
	}
}

func TestClosePayloadEncode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		code   StatusCode
		reason string
		want   string
		ok     bool
	}{
		{"1000", 1000, "", "\x03\xe8", true},
		{"1000 bye", 1000, "bye", "\x03\xe8bye", true},
		{"1011 UTF-8", 1011, "κόσμε", "\x03\xf3κόσμε", true},
		{"3000", 3000, "", "\x0b\xb8", true},
		{"4999", 4999, "", "\x13\x87", true},
		{"123-byte reason", 1000, strings.Repeat("r", 123), "\x03\xe8" + strings.Repeat("r", 123), true},
		{"1005 empty", StatusNoStatusRcvd, "", "", true},

		{"124-byte reason", 1000, strings.Repeat("r", 124), "", false},
		{"1005 with reason", StatusNoStatusRcvd, "x", "", false},
		{"bad UTF-8 reason", 1000, "\xff", "", false},
		{"0", 0, "", "", false},
		{"999", 999, "", "", false},
		{"1004", 1004, "", "", false},
		{"1006", StatusAbnormalClosure, "", "", false},
		{"1015", StatusTLSHandshake, "", "", false},
		{"1016", 1016, "", "", false},
		{"2999", 2999, "", "", false},
		{"5000", 5000, "", "", false},
		{"negative", -1, "", "", false},
		{"65536 (would wrap to 0)", 65536, "", "", false},
		{"66536 (would wrap to 1000)", 66536, "", "", false},
	} {
		got, err := closePayload(tt.code, tt.reason)
		if tt.ok {
			if err != nil || string(got) != tt.want {
				t.Errorf("%s: closePayload(%d, %q) = %q, %v; want %q, nil", tt.name, int(tt.code), tt.reason, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: closePayload(%d, %q) = %q, nil; want an error", tt.name, int(tt.code), tt.reason, got)
		} else if !strings.HasPrefix(err.Error(), "websocket: ") {
			t.Errorf("%s: error %q does not start with \"websocket: \"", tt.name, err)
		}
	}
}

// TestClosePayloadRoundTrip checks that every payload closePayload makes is
// one parseClosePayload accepts, with the same code and reason.
func TestClosePayloadRoundTrip(t *testing.T) {
	t.Parallel()
	for code := StatusCode(0); code < 5100; code++ {
		p, err := closePayload(code, "why")
		if err != nil {
			if code.validReceived() {
				t.Errorf("closePayload(%d) = %v", int(code), err)
			}
			continue
		}
		ce, err := parseClosePayload(p)
		if err != nil || ce != (CloseError{code, "why"}) {
			t.Errorf("parseClosePayload(closePayload(%d, \"why\")) = %+v, %v", int(code), ce, err)
		}
	}
}

// TestClosePayloadMust checks the payload sent when failing a connection:
// the reason is cut to 123 bytes at a character boundary.
func TestClosePayloadMust(t *testing.T) {
	t.Parallel()
	a := func(n int) string { return strings.Repeat("a", n) }
	for _, tt := range []struct {
		name   string
		code   StatusCode
		reason string
		want   string // the reason in the payload
	}{
		{"short", 1002, "bad frame", "bad frame"},
		{"empty", 1002, "", ""},
		{"123 ASCII kept", 1002, a(123), a(123)},
		{"124 ASCII cut", 1002, a(124), a(123)},
		{"2-byte character across the limit", 1007, a(122) + "é", a(122)},
		{"2-byte character at the limit", 1007, a(121) + "é" + "b", a(121) + "é"},
		{"3-byte character across the limit", 1009, a(121) + "€", a(121)},
		{"3-byte character across the limit by one", 1009, a(122) + "€", a(122)},
		{"4-byte character across the limit", 1002, a(120) + "𝄞", a(120)},
		{"4-byte character ending at the limit", 1002, a(119) + "𝄞" + "z", a(119) + "𝄞"},
		{"all 2-byte characters", 1002, strings.Repeat("é", 100), strings.Repeat("é", 61)},
		{"all 3-byte characters", 1002, strings.Repeat("€", 100), strings.Repeat("€", 41)},
		{"all 4-byte characters", 1002, strings.Repeat("𝄞", 100), strings.Repeat("𝄞", 30)},
	} {
		want := string([]byte{byte(tt.code >> 8), byte(tt.code)}) + tt.want
		got := mustClosePayload(tt.code, tt.reason)
		if string(got) != want {
			t.Errorf("%s: mustClosePayload(%v, %d bytes) = %q, want %q", tt.name, tt.code, len(tt.reason), got, want)
		}
		if len(got) > maxControlPayload || !utf8.Valid(got[2:]) {
			t.Errorf("%s: payload of %d bytes, valid UTF-8 %v", tt.name, len(got), utf8.Valid(got[2:]))
		}
	}
	// A code that may not be sent cannot fail a connection: the payload
	// falls back to 1011 with no reason rather than break the protocol.
	if got := mustClosePayload(StatusAbnormalClosure, "lost"); string(got) != "\x03\xf3" {
		t.Errorf("mustClosePayload(1006, \"lost\") = %q, want %q", got, "\x03\xf3")
	}
}

func TestCloseStatusCodeString(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		code StatusCode
		want string
	}{
		{StatusNormalClosure, "1000 (normal closure)"},
		{StatusGoingAway, "1001 (going away)"},
		{StatusProtocolError, "1002 (protocol error)"},
		{StatusUnsupportedData, "1003 (unsupported data)"},
		{StatusNoStatusRcvd, "1005 (no status received)"},
		{StatusAbnormalClosure, "1006 (abnormal closure)"},
		{StatusInvalidFramePayloadData, "1007 (invalid frame payload data)"},
		{StatusPolicyViolation, "1008 (policy violation)"},
		{StatusMessageTooBig, "1009 (message too big)"},
		{StatusMandatoryExtension, "1010 (mandatory extension)"},
		{StatusInternalError, "1011 (internal error)"},
		{StatusServiceRestart, "1012 (service restart)"},
		{StatusTryAgainLater, "1013 (try again later)"},
		{StatusBadGateway, "1014 (bad gateway)"},
		{StatusTLSHandshake, "1015 (TLS handshake)"},
		{1004, "1004"},
		{1016, "1016"},
		{2999, "2999"},
		{3000, "3000 (registered)"},
		{3999, "3999 (registered)"},
		{4000, "4000 (private use)"},
		{4999, "4999 (private use)"},
		{5000, "5000"},
		{0, "0"},
		{-1, "-1"},
	} {
		if got := tt.code.String(); got != tt.want {
			t.Errorf("StatusCode(%d).String() = %q, want %q", int(tt.code), got, tt.want)
		}
	}
}

// fuzzValidCloseCode restates RFC 6455 §7.4: the codes a close frame may
// carry are 1000-1003, 1007-1011, those registered since (1012-1014), and
// 3000-4999.
func fuzzValidCloseCode(code StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

func FuzzParseClosePayload(f *testing.F) {
	for _, s := range []string{
		"", "\x03", "\x03\xe8", "\x03\xe8bye", "\x03\xed", "\x03\xee", "\x0b\xb8", "\x13\x88",
		"\x03\xe8\xff", "\x03\xe9\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		ce, err := parseClosePayload(p)
		var pe *ProtocolError
		switch {
		case len(p) == 0:
			if err != nil || ce != (CloseError{Code: StatusNoStatusRcvd}) {
				t.Fatalf("empty payload: %+v, %v; want code 1005", ce, err)
			}
			if q, err := closePayload(ce.Code, ce.Reason); len(q) != 0 || err != nil {
				t.Fatalf("closePayload(1005, \"\") = %q, %v; want empty", q, err)
			}
			return
		case len(p) == 1, !fuzzValidCloseCode(StatusCode(binary.BigEndian.Uint16(p))):
			if !errors.As(err, &pe) || pe.Code != StatusProtocolError {
				t.Fatalf("payload %q: %+v, %v; want a *ProtocolError with 1002", p, ce, err)
			}
			return
		case !utf8.Valid(p[2:]):
			if !errors.As(err, &pe) || pe.Code != StatusInvalidFramePayloadData {
				t.Fatalf("payload %q: %+v, %v; want a *ProtocolError with 1007", p, ce, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid payload %q: %v", p, err)
		}
		if want := (CloseError{StatusCode(binary.BigEndian.Uint16(p)), string(p[2:])}); ce != want {
			t.Fatalf("payload %q: %+v, want %+v", p, ce, want)
		}
		q, err := closePayload(ce.Code, ce.Reason)
		if len(p) > maxControlPayload {
			if err == nil {
				t.Fatalf("closePayload accepted a reason of %d bytes", len(ce.Reason))
			}
			return
		}
		if err != nil || !bytes.Equal(q, p) {
			t.Fatalf("closePayload(%d, %q) = %q, %v; want %q", ce.Code, ce.Reason, q, err, p)
		}
	})
}

func FuzzClosePayload(f *testing.F) {
	f.Add(1000, "")
	f.Add(1005, "")
	f.Add(1005, "why")
	f.Add(1006, "")
	f.Add(4999, strings.Repeat("é", 61)+"x")
	f.Add(3000, strings.Repeat("x", 124))
	f.Add(1001, "\xff")
	f.Add(-64536, "")
	f.Fuzz(func(t *testing.T, code int, reason string) {
		c := StatusCode(code)
		p, err := closePayload(c, reason)
		ok := (fuzzValidCloseCode(c) || c == StatusNoStatusRcvd && reason == "") &&
			len(reason) <= 123 && utf8.ValidString(reason)
		if (err == nil) != ok {
			t.Fatalf("closePayload(%d, %q) = %q, %v; want ok=%v", code, reason, p, err, ok)
		}
		if !ok {
			return
		}
		ce, err := parseClosePayload(p)
		if err != nil || ce != (CloseError{c, reason}) {
			t.Fatalf("parseClosePayload(closePayload(%d, %q)) = %+v, %v", code, reason, ce, err)
		}
	})
}
