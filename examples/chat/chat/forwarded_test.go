package chat

import (
	"net/netip"
	"strings"
	"testing"
)

// forwardedFor takes the for of the last element alone, as the proxy
// nearest the server wrote it, whatever the client wrote before; the
// zero Addr (the caller then counts the connection's address) for a
// node that is no address, and for anything malformed.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	const none = "invalid IP"
	for _, tc := range []struct{ v, want string }{
		// RFC 7239's own examples, §4 and §7.
		{`for="_gazonk"`, none},
		{`For="[2001:db8:cafe::17]:4711"`, "2001:db8:cafe::17"},
		{`for=192.0.2.60;proto=http;by=203.0.113.43`, "192.0.2.60"},
		{`for=192.0.2.43, for=198.51.100.17`, "198.51.100.17"},
		{`for=192.0.2.43, for="[2001:db8:cafe::17]"`, "2001:db8:cafe::17"},
		{`for=192.0.2.43, for=unknown`, none},
		{`for=unknown, for=192.0.2.43`, "192.0.2.43"},
		{`for="_gazonk:_port", for=192.0.2.43`, "192.0.2.43"},

		// Nodes.
		{`for=192.0.2.43`, "192.0.2.43"},
		{`for="192.0.2.43"`, "192.0.2.43"},
		{`for="192.0.2.43:47011"`, "192.0.2.43"},
		{`for="192.0.2.43:_p.o-r_t9"`, "192.0.2.43"},
		{`for="[2001:db8::1]"`, "2001:db8::1"},
		{`for="[2001:db8::1]:0"`, "2001:db8::1"},
		{`for="[2001:db8::1]:_port"`, "2001:db8::1"},
		{`for="[::ffff:192.0.2.1]"`, "::ffff:192.0.2.1"},
		{`for="\1\9\2.0.2.43"`, "192.0.2.43"},
		{`for=unknown`, none},
		{`for=UNKNOWN`, none},
		{`for="unknown:80"`, none},
		{`for=_hidden`, none},
		{`for="_hidden:_port"`, none},
		{`for=192.0.2.43:80`, none},         // a colon in a token
		{`for=[2001:db8::1]`, none},         // brackets in a token
		{`for="2001:db8::1"`, none},         // no brackets
		{`for="[2001:db8::1"`, none},        // not closed
		{`for="[2001:db8::1]x"`, none},      // no colon before the port
		{`for="[2001:db8::1]:"`, none},      // an empty port
		{`for="[192.0.2.43]"`, none},        // IPv4 in brackets
		{`for="[fe80::1%eth0]"`, none},      // a zone
		{`for="192.0.2.43:"`, none},         // an empty port
		{`for="192.0.2.43:123456"`, none},   // six digits
		{`for="192.0.2.43:_"`, none},        // an empty obfuscated port
		{`for="192.0.2.43:_a/b"`, none},     // a slash in an obfuscated port
		{`for="192.0.2.43:-1"`, none},       // a sign
		{`for=192.0.2.043`, none},           // a leading zero
		{`for=1.2.3.4.5`, none},             // five bytes
		{`for=""`, none},                    // empty
		{`for="192.0.2.43 "`, none},         // a space in the node
		{`for="192.0.2.43\"`, none},         // the closing quote escaped
		{"for=\"192.0.2.43\x7f\"", none},    // DEL
		{"for=\"192.0.2.43\x00\"", none},    // NUL
		{"for=\"\x80192.0.2.43\"", none},    // obs-text, allowed in a quoted string, but no address
		{`for="192.0.2.43:80`, none},        // not closed
		{`for="192.0.2.43\`, none},          // a backslash at the end
		{`for=192.0.2.43"`, none},           // a quote after a token
		{`for="192.0.2.43"x`, none},         // a token after a quoted string
		{`for="192.0.2.43" x`, none},        // a token after a quoted string and a space
		{`for=192.0.2.43 192.0.2.44`, none}, // two tokens

		// Pairs.
		{`proto=https;for=192.0.2.43`, "192.0.2.43"},
		{`FOR=192.0.2.43`, "192.0.2.43"},
		{` for=192.0.2.43 ; proto=http `, "192.0.2.43"},
		{"\tfor=192.0.2.43\t", "192.0.2.43"},
		{`;for=192.0.2.43;;`, "192.0.2.43"},
		{`by="a;b,c=d";for=192.0.2.43;host="x,\"y\",z"`, "192.0.2.43"},
		{`for=192.0.2.43;for=192.0.2.43`, none}, // twice
		{`for=192.0.2.43;FOR=198.51.100.1`, none},
		{`proto=https`, none}, // no for
		{`for=192.0.2.43;proto`, none},
		{`for=192.0.2.43;proto=`, none},
		{`for=192.0.2.43;=http`, none},
		{`for 192.0.2.43`, none},
		{`for = 192.0.2.43`, none},
		{`for=192.0.2.43;pro to=http`, none},
		{`for=192.0.2.43;proto="http`, none},
		{`fór=192.0.2.43`, none},
		{``, none},

		// Elements: the last alone.
		{`for=192.0.2.43,`, none},
		{`for=192.0.2.43, `, none},
		{`for=192.0.2.43, proto=https`, none},
		{`for=192.0.2.43,,for=198.51.100.17`, "198.51.100.17"},
		{`for="unclosed, for=198.51.100.17`, "198.51.100.17"},
		{`for="\", for=198.51.100.17`, "198.51.100.17"},
		{`"""",,;;==, for=198.51.100.17`, "198.51.100.17"},
		{`for=198.51.100.17, for="192.0.2.43, for=203.0.113.1"`, none},
		{`for=198.51.100.17, by="x, y";for=192.0.2.43`, "192.0.2.43"},
		{`for="x\\", for=198.51.100.17`, "198.51.100.17"},
		{`for=198.51.100.17, for="192.0.2.43`, none},
		{`for=198.51.100.17, for=192.0.2.43"`, none},
	} {
		if got := forwardedFor(tc.v).String(); got != tc.want {
			t.Errorf("Forwarded: %s: %s, want %s", tc.v, got, tc.want)
		}
	}
}

// FuzzForwardedFor: no header panics, and whatever a client writes in
// Forwarded, the element a proxy adds after it decides the address.
func FuzzForwardedFor(f *testing.F) {
	for _, s := range []string{``, `for=192.0.2.43`, `for="[2001:db8::1]:80";proto=https`, `for="`, `for="\`, `a="\"", b=";,"`, `,,;;==`} {
		f.Add(s)
	}
	want := netip.MustParseAddr("2001:db8::1")
	f.Fuzz(func(t *testing.T, client string) {
		if ip := forwardedFor(client); ip.IsValid() && (ip.Zone() != "" || !strings.Contains(strings.ToLower(client), "for=")) {
			t.Errorf("%q: %v", client, ip)
		}
		if got := forwardedFor(client + `, for="[2001:db8::1]:443";proto=https`); got != want {
			t.Errorf("%q, then the proxy's element: %v, want %v", client, got, want)
		}
	})
}
