package conformance_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rfc6455/websocket/internal/godebugtest"
)

// The transports the suite runs its cases over. Every case runs over each:
// the frames of RFC 6455 are the same in a TCP connection upgraded over
// HTTP/1.1 and in an HTTP/2 stream opened with an extended CONNECT (RFC
// 8441), and so must be the library's answers to them. What differs is
// how a connection ends: a TCP close or half-close over HTTP/1.1, the
// stream's END_STREAM over HTTP/2 (RFC 8441 §5).

// cfTransport names what carries the WebSocket between the raw peer and
// the library.
type cfTransport struct {
	name  string
	http2 bool // an HTTP/2 stream; else a TCP connection upgraded over HTTP/1.1
	tls   bool // HTTP/2 over TLS, by ALPN h2; else cleartext with prior knowledge (h2c)
	// sample names the sections that run over the transport; nil runs
	// every one.
	sample []string
}

var (
	cfHTTP1 = cfTransport{name: "http1"}
	cfH2C   = cfTransport{name: "h2c", http2: true}
	// The WebSocket over TLS is framed by the same code as over h2c; TLS
	// adds a handshake per case, and record boundaries that fall anywhere
	// in the frames. A sample of the sections runs over it, in both
	// roles, to keep the suite's time modest: every length class, whole
	// and cut every way, and every way a connection ends.
	cfH2TLS = cfTransport{name: "h2", http2: true, tls: true,
		sample: []string{"1-framing", "7-close", cfSweep}}
)

// cfSweep is the section name of TestConformanceBoundarySweep.
const cfSweep = "boundary-sweep"

// runs reports whether the cases of section run over tr.
func (tr cfTransport) runs(section string) bool {
	return tr.sample == nil || slices.Contains(tr.sample, section)
}

// scheme is the :scheme of the extended CONNECT.
func (tr cfTransport) scheme() string {
	if tr.tls {
		return "https"
	}
	return "http"
}

// cfConn is the raw peer's byte stream to the library: a *net.TCPConn
// over HTTP/1.1, an *h2Stream over HTTP/2. Read returns io.EOF exactly
// when the library ended the stream in order: a TCP FIN, or END_STREAM.
type cfConn interface {
	io.ReadWriteCloser
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
	// CloseWrite ends the peer's side in order: a TCP half-close, or
	// END_STREAM.
	CloseWrite() error
}

// xconnect is the GODEBUG setting under which Go's HTTP/2 server offers
// extended CONNECT (RFC 8441), which the library's Accept needs over
// HTTP/2; net/http reads it once, as the program starts.
const xconnect = "http2xconnect=1"

// cfForEachTransport runs run over each transport, in parallel: over
// HTTP/1.1 in this process, and over HTTP/2, h2c and TLS, in a child
// process started with GODEBUG=http2xconnect=1, which runs the same test
// and in it the HTTP/2 transports alone. The child runs the whole test,
// whatever -run selects below http2; to run some HTTP/2 cases alone, set
// the variable yourself:
//
//	GODEBUG=http2xconnect=1 go test -run 'TestConformance/http2/h2c/server/6-utf8' ./conformance
func cfForEachTransport(t *testing.T, run func(t *testing.T, tr cfTransport)) {
	t.Run(cfHTTP1.name, func(t *testing.T) {
		if godebugtest.Has(xconnect) {
			t.Skip("runs in the parent process, without " + xconnect)
		}
		t.Parallel()
		run(t, cfHTTP1)
	})
	t.Run("http2", func(t *testing.T) {
		t.Parallel()
		if !godebugtest.Has(xconnect) {
			top, _, _ := strings.Cut(t.Name(), "/")
			godebugtest.Run(t, xconnect, top)
			return
		}
		for _, tr := range []cfTransport{cfH2C, cfH2TLS} {
			t.Run(tr.name, func(t *testing.T) {
				t.Parallel()
				run(t, tr)
			})
		}
	})
}

// cfCertificate is a certificate for 127.0.0.1 and a pool that trusts it.
type cfCertificate struct {
	cert tls.Certificate
	pool *x509.CertPool
	err  error
}

// cfTLS makes the certificate of the TLS transport, once per process.
var cfTLS = sync.OnceValue(func() cfCertificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return cfCertificate{err: err}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return cfCertificate{err: err}
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return cfCertificate{err: err}
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return cfCertificate{cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool: pool}
})

// cfCurves is the key exchange of the TLS transport: X25519 alone, the
// cheapest, since a handshake per case under the race detector on a busy
// machine is the transport's main cost, and the key exchange is nothing
// the suite checks.
var cfCurves = []tls.CurveID{tls.X25519}

// cfServerTLS is the TLS configuration of a server offering HTTP/2 alone.
func cfServerTLS(t *testing.T) *tls.Config {
	c := cfTLS()
	if c.err != nil {
		t.Fatal(c.err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c.cert}, NextProtos: []string{"h2"}, CurvePreferences: cfCurves}
}

// cfClientTLS is the TLS configuration of a client that trusts cfTLS.
func cfClientTLS(t *testing.T) *tls.Config {
	c := cfTLS()
	if c.err != nil {
		t.Fatal(c.err)
	}
	return &tls.Config{RootCAs: c.pool, NextProtos: []string{"h2"}, ServerName: "127.0.0.1", CurvePreferences: cfCurves}
}

// cfCheckALPN checks that a TLS handshake chose HTTP/2.
func cfCheckALPN(t *testing.T, tc *tls.Conn) {
	t.Helper()
	if p := tc.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("ALPN chose %q, want h2", p)
	}
}
