package chat

import (
	"net/netip"
	"strings"
)

// forwardedFor returns the address that the for parameter of the last
// element of v, a Forwarded field value (RFC 7239 §4), names: that of
// the client as the proxy nearest the server saw it, the proxy having
// added the element last. The zero Addr if the element has no for, or
// more than one, or names no address (unknown, or an obfuscated
// identifier: RFC 7239 §6.2, §6.3), or is malformed: the caller then
// counts the request under the address it came from, as for an
// X-Forwarded-For whose last entry is no address. The elements before
// the last are not read: the client writes them as it likes.
func forwardedFor(v string) netip.Addr {
	elem, ok := lastElement(v)
	if !ok {
		return netip.Addr{}
	}
	node, ok := forParam(elem)
	if !ok {
		return netip.Addr{}
	}
	return nodeAddr(node)
}

// lastElement returns what follows the last comma of v outside a
// quoted string. It reads from the end, so that the elements before the
// last, however malformed (a quote left open would swallow the rest of
// v read from the start), cannot change where the last begins. ok is
// false if the quotes of the last element do not pair.
func lastElement(v string) (elem string, ok bool) {
	quoted := false
	for i := len(v) - 1; i >= 0; i-- {
		switch {
		case v[i] == '"' && !escaped(v, i):
			quoted = !quoted
		case v[i] == ',' && !quoted:
			return v[i+1:], true
		}
	}
	return v, !quoted
}

// escaped reports whether v[i] follows an odd run of backslashes: within
// a quoted string, it is the second byte of a quoted-pair. (Outside one,
// a backslash is malformed, which forParam finds.)
func escaped(v string, i int) bool {
	n := 0
	for i--; i >= 0 && v[i] == '\\'; i-- {
		n++
	}
	return n%2 == 1
}

// forParam returns the value of the one for parameter of elem, a
// forwarded-element (RFC 7239 §4): pairs of token "=" (token or
// quoted-string), separated by semicolons, parameter names in any case.
// Whitespace around the element and its semicolons is allowed, and
// empty pairs, as the grammar allows. ok is false if elem is malformed,
// or has no for, or more than one (§4: "Each parameter MUST NOT occur
// more than once per forwarded-element").
func forParam(elem string) (node string, ok bool) {
	found := false
	for s := trimOWS(elem); ; {
		if s != "" && s[0] != ';' {
			name, value, rest, ok := pair(s)
			if !ok {
				return "", false
			}
			if strings.EqualFold(name, "for") {
				if found {
					return "", false
				}
				node, found = value, true
			}
			s = trimOWS(rest)
		}
		if s == "" {
			return node, found
		}
		if s[0] != ';' {
			return "", false
		}
		s = trimOWS(s[1:])
	}
}

// pair reads a forwarded-pair from the start of s: its name, its value
// with any quoting undone, and what follows it.
func pair(s string) (name, value, rest string, ok bool) {
	n := tokenLen(s)
	if n == 0 || n == len(s) || s[n] != '=' {
		return "", "", "", false
	}
	name, s = s[:n], s[n+1:]
	if strings.HasPrefix(s, `"`) {
		value, rest, ok = quotedString(s)
		return name, value, rest, ok
	}
	if n = tokenLen(s); n == 0 {
		return "", "", "", false
	}
	return name, s[:n], s[n:], true
}

// quotedString reads a quoted-string (RFC 9110 §5.6.4) from the start of
// s: its text with the quoted-pairs undone, and what follows it.
func quotedString(s string) (text, rest string, ok bool) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			return b.String(), s[i+1:], true
		case c == '\\':
			if i++; i == len(s) || !textByte(s[i]) {
				return "", "", false
			}
			b.WriteByte(s[i])
		case textByte(c):
			b.WriteByte(c)
		default:
			return "", "", false
		}
	}
	return "", "", false // not closed
}

// textByte reports whether c may stand in a quoted string, escaped or
// not ('"' and '\\' escaped only): HTAB, SP, VCHAR, obs-text.
func textByte(c byte) bool { return c == '\t' || c >= ' ' && c != 0x7f }

// tokenLen returns the length of the token (RFC 9110 §5.6.2) at the
// start of s.
func tokenLen(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return i
		}
	}
	return len(s)
}

// trimOWS trims the optional whitespace of RFC 9110 §5.6.3, spaces and
// tabs, from both ends of s.
func trimOWS(s string) string { return strings.Trim(s, " \t") }

// nodeAddr returns the address a node (RFC 7239 §6) names: an IPv4
// address, or an IPv6 one in brackets, without a zone, with a port or an
// obfuscated port or neither. The zero Addr for "unknown" or an
// obfuscated identifier, which name no address that a client could be
// counted under, and for anything malformed. An IPv6 address without
// brackets is malformed: its colons cannot be told from a port's.
func nodeAddr(node string) netip.Addr {
	host, port := node, ""
	if strings.HasPrefix(node, "[") {
		end := strings.IndexByte(node, ']')
		if end < 0 {
			return netip.Addr{}
		}
		host, port = node[1:end], node[end+1:]
	} else if i := strings.IndexByte(node, ':'); i >= 0 {
		host, port = node[:i], node[i:]
	}
	if port != "" && (port[0] != ':' || !nodePort(port[1:])) {
		return netip.Addr{}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || ip.Is6() != strings.HasPrefix(node, "[") {
		return netip.Addr{}
	}
	return ip
}

// nodePort reports whether s is a node-port (RFC 7239 §6): 1 to 5
// digits, or "_" and 1 or more letters, digits, ".", "_" or "-".
func nodePort(s string) bool {
	if obf, ok := strings.CutPrefix(s, "_"); ok {
		return obf != "" && strings.Trim(obf, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
	}
	return len(s) >= 1 && len(s) <= 5 && strings.Trim(s, "0123456789") == ""
}
