package websocket

// The Sec-WebSocket-Extensions grammar fed arbitrary header lines:
// FuzzParseExtensions.

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// fuzzExtensionLine restates the grammar of a Sec-WebSocket-Extensions
// line (RFC 6455 §9.1, with RFC 9110's token, optional whitespace and
// empty list elements) as a regular expression. A quoted value's content
// must be a token once its backslashes are taken out (§9.1: "the value
// MUST conform to the 'token' ABNF"), so each of its characters is a token
// character, escaped or not.
var fuzzExtensionLine = func() *regexp.Regexp {
	const (
		tchar   = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]"
		token   = tchar + "+"
		quoted  = `"(?:\\?` + tchar + `)+"`
		ows     = "[ \t]*"
		element = token + "(?:" + ows + ";" + ows + token + "(?:" + ows + "=" + ows + "(?:" + token + "|" + quoted + "))?)*"
	)
	return regexp.MustCompile("^" + ows + "(?:" + element + ows + ")?(?:," + ows + "(?:" + element + ows + ")?)*$")
}()

// fuzzSplitExtensions reads the extensions of lines that match
// fuzzExtensionLine. In such a line no comma, semicolon or equals sign
// stands inside a quoted value, and a backslash or a double quote stands
// nowhere else, so splitting and trimming find every part.
func fuzzSplitExtensions(lines []string) []extension {
	var exts []extension
	for _, line := range lines {
		for _, elem := range strings.Split(line, ",") {
			if strings.Trim(elem, " \t") == "" {
				continue
			}
			parts := strings.Split(elem, ";")
			ext := extension{name: strings.Trim(parts[0], " \t")}
			for _, part := range parts[1:] {
				name, value, hasValue := strings.Cut(part, "=")
				value = strings.NewReplacer(`\`, "", `"`, "").Replace(strings.Trim(value, " \t"))
				ext.params = append(ext.params, extensionParam{name: strings.Trim(name, " \t"), value: value, hasValue: hasValue})
			}
			exts = append(exts, ext)
		}
	}
	return exts
}

// FuzzParseExtensions checks parseExtensions against the grammar of RFC
// 6455 §9.1: it accepts exactly the header lines (newline-separated in
// raw) that fuzzExtensionLine matches, but for those with more elements
// or parameters than it keeps, and finds in them the extensions
// and parameters fuzzSplitExtensions finds; written back out as tokens,
// what it found parses to the same; and its errors carry one prefix.
func FuzzParseExtensions(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate",
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_max_window_bits=10; client_max_window_bits=\"12\"",
		"foo, bar; baz=2\npermessage-deflate ;\tserver_no_context_takeover",
		", ,x-webkit-deflate-frame,",
		"a; b=\"c\\d\"",
		"a; b=\"\"",
		"a; b=\"c d\"",
		"a b",
		"a; b=",
		"a;=b",
		"a; b=\"c\\\"",
		strings.Repeat("a,", 17),
		"a" + strings.Repeat(";b", 17),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		lines := strings.Split(raw, "\n")
		h := http.Header{"Sec-Websocket-Extensions": lines}
		exts, err := parseExtensions(h)
		valid := true
		for _, line := range lines {
			valid = valid && fuzzExtensionLine.MatchString(line)
		}
		overLimit := false // more elements or parameters than are kept
		if valid {
			want := fuzzSplitExtensions(lines)
			overLimit = len(want) > maxExtensions
			for _, ext := range want {
				overLimit = overLimit || len(ext.params) > maxExtensionParams
			}
		}
		if err != nil {
			if valid && !overLimit {
				t.Fatalf("refused %q, which the grammar allows: %v", lines, err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "websocket: ") || strings.HasPrefix(msg[len("websocket: "):], "websocket: ") {
				t.Fatalf("error %q does not start with one websocket: prefix", msg)
			}
			return
		}
		if !valid || overLimit {
			t.Fatalf("accepted %q, which the grammar does not allow or has more than is kept, as %+v", lines, exts)
		}
		if want := fuzzSplitExtensions(lines); !reflect.DeepEqual(exts, want) {
			t.Fatalf("parsed %q as %+v, want %+v", lines, exts, want)
		}
		var b strings.Builder
		for i, ext := range exts {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(ext.name)
			for _, prm := range ext.params {
				b.WriteString("; " + prm.name)
				if prm.hasValue {
					b.WriteString("=" + prm.value)
				}
			}
		}
		again, err := parseExtensions(http.Header{"Sec-Websocket-Extensions": {b.String()}})
		if err != nil || !reflect.DeepEqual(again, exts) {
			t.Fatalf("%+v written out as %q parses as %+v, %v", exts, b.String(), again, err)
		}
	})
}
