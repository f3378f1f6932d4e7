package websocket

import (
	"fmt"
	"net/http"
	"strings"
)

// extension is one element of a Sec-WebSocket-Extensions list.
type extension struct {
	name   string
	params []extensionParam
}

type extensionParam struct {
	name     string
	value    string
	hasValue bool
}

// parseExtensions parses every Sec-WebSocket-Extensions line of h by the
// grammar of RFC 6455 §9.1:
//
//	extension-list = 1#extension
//	extension = extension-token *( ";" extension-param )
//	extension-param = token [ "=" (token | quoted-string) ]
//
// A quoted value, once unescaped, must be a token too.
//
// What it keeps is bounded, not the header's length: more than
// maxExtensions elements, or more than maxExtensionParams parameters in
// one, is an error. No offer or answer needs as many (permessage-deflate
// has four parameters, and a browser offers it once), and each parameter
// would otherwise cost twenty times its bytes in the header.
func parseExtensions(h http.Header) ([]extension, error) {
	var exts []extension
	for _, line := range h[hdrExtensions] {
		p := extParser{s: line}
		for {
			p.skipSpace()
			if p.done() {
				break
			}
			if p.peek() == ',' { // empty list elements are allowed
				p.i++
				continue
			}
			name, ok := p.token()
			if !ok {
				return nil, p.errorf("extension name expected")
			}
			if len(exts) == maxExtensions {
				return nil, fmt.Errorf("websocket: Sec-WebSocket-Extensions lists more than %d extensions", maxExtensions)
			}
			ext := extension{name: name}
			for {
				p.skipSpace()
				if p.done() || p.peek() == ',' {
					break
				}
				if p.peek() != ';' {
					return nil, p.errorf("';' or ',' expected")
				}
				p.i++
				p.skipSpace()
				var prm extensionParam
				if prm.name, ok = p.token(); !ok {
					return nil, p.errorf("parameter name expected")
				}
				p.skipSpace()
				if !p.done() && p.peek() == '=' {
					p.i++
					p.skipSpace()
					if prm.value, ok = p.value(); !ok {
						return nil, p.errorf("parameter value expected")
					}
					prm.hasValue = true
				}
				if len(ext.params) == maxExtensionParams {
					return nil, fmt.Errorf("websocket: Sec-WebSocket-Extensions: extension %s has more than %d parameters", quoted(ext.name), maxExtensionParams)
				}
				ext.params = append(ext.params, prm)
			}
			exts = append(exts, ext)
		}
	}
	return exts, nil
}

// maxExtensions and maxExtensionParams bound what parseExtensions keeps.
const (
	maxExtensions      = 16
	maxExtensionParams = 16
)

type extParser struct {
	s string
	i int
}

func (p *extParser) done() bool { return p.i >= len(p.s) }
func (p *extParser) peek() byte { return p.s[p.i] }

func (p *extParser) skipSpace() {
	for !p.done() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

func (p *extParser) token() (string, bool) {
	start := p.i
	for !p.done() && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i], p.i > start
}

// value reads a token or a quoted string whose content is a token.
func (p *extParser) value() (string, bool) {
	if p.done() || p.peek() != '"' {
		return p.token()
	}
	p.i++
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '"':
			v := b.String()
			return v, validHeaderName(v)
		case c == '\\' && !p.done():
			c = p.s[p.i]
			p.i++
		}
		b.WriteByte(c)
	}
	return "", false // unterminated
}

func (p *extParser) errorf(msg string) error {
	return fmt.Errorf("websocket: Sec-WebSocket-Extensions %s: %s at byte %d", quoted(p.s), msg, p.i)
}
