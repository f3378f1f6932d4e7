package websocket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Interop tests run real peers, node-ws (Node.js) and python3-websockets,
// against Accept and Dial, in both roles, with and without
// permessage-deflate. Each run exchanges a scripted corpus of messages that
// both sides check byte for byte, then a closing handshake started by one
// side or the other. Both sides report what compression they settled, and
// the wire sizes show that each compresses (and keeps its context) as
// settled. The peers are skipped when missing, unless
// WEBSOCKET_REQUIRE_PEERS=1.

// interopWait bounds every wait on a peer process: each line of its
// report, its exit, and each of our reads and writes.
const interopWait = 10 * time.Second

// interopPeer is a peer implementation driven by a script in
// testdata/interop (see the scripts for the protocol).
type interopPeer struct {
	name   string
	prog   string
	script string
}

var (
	nodePeer   = interopPeer{"node-ws", "/usr/bin/node", "testdata/interop/node_peer.js"}
	pythonPeer = interopPeer{"python-websockets", "/usr/bin/python3", "testdata/interop/python_peer.py"}
)

// requirePeer skips the test when the peer cannot run, or fails it when
// WEBSOCKET_REQUIRE_PEERS=1, and logs the peer's version.
func requirePeer(t *testing.T, p interopPeer) {
	t.Helper()
	version, err := probePeer(p)
	if err != nil {
		if os.Getenv("WEBSOCKET_REQUIRE_PEERS") == "1" {
			t.Fatalf("WEBSOCKET_REQUIRE_PEERS=1 but %s cannot run: %v", p.name, err)
		}
		t.Skipf("%s cannot run: %v", p.name, err)
	}
	t.Logf("%s %s", p.name, version)
}

func probePeer(p interopPeer) (string, error) {
	if _, err := os.Stat(p.prog); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.prog, p.script, "version")
	cmd.WaitDelay = interopWait
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	var v struct {
		Version string `json:"version"`
		OK      bool   `json:"ok"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return "", fmt.Errorf("version report %q: %v", out, err)
	}
	if !v.OK {
		return "", fmt.Errorf("version %s is not supported by %s", v.Version, p.script)
	}
	return strings.TrimSpace(string(out)), nil
}

// interopMsg is one message of the corpus.
type interopMsg struct {
	name         string
	typ          MessageType
	p            []byte
	compressible bool // shrinks at least 16 times with any window
	json         bool // one of a run of similar JSON messages
	fragmented   bool // sent in three frames, cut anywhere (mid-character too)
}

// interopCorpus returns the messages to exchange: the length boundaries in
// both types, a mebibyte that compresses well and one that does not,
// similar JSON messages (where context takeover pays), non-ASCII text, and
// some of them again in fragments.
func interopCorpus() []interopMsg {
	rng := rand.New(rand.NewChaCha8([32]byte{'i', 'n', 't', 'e', 'r', 'o', 'p'}))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while seven wizards quietly hex jolly zebras")
	text := func(n int) []byte {
		var b []byte
		for len(b) < n {
			b = append(b, words[rng.IntN(len(words))]...)
			b = append(b, ' ')
		}
		return b[:n]
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}

	var msgs []interopMsg
	for _, n := range []int{0, 1, 125, 126, 65535, 65536} {
		msgs = append(msgs,
			interopMsg{name: fmt.Sprintf("text/%d", n), typ: MessageText, p: text(n)},
			interopMsg{name: fmt.Sprintf("binary/%d", n), typ: MessageBinary, p: random(n)})
	}

	var lines []byte
	for i := 0; len(lines) < 1<<20; i++ {
		lines = fmt.Appendf(lines, "line %07d: the quick brown fox jumps over the lazy dog\n", i)
	}
	period := random(4000)
	msgs = append(msgs,
		interopMsg{name: "text/1MiB-lines", typ: MessageText, p: lines[:1<<20], compressible: true},
		interopMsg{name: "binary/1MiB-random", typ: MessageBinary, p: random(1 << 20)},
		interopMsg{name: "binary/1MiB-period-4000", typ: MessageBinary, p: bytes.Repeat(period, 1<<20/len(period)+1)[:1<<20]})

	for i := range 16 {
		m := fmt.Appendf(nil, `{"seq":%d,"type":"position","user":{"id":%d,"name":"user-%04d"},"pos":{"lat":%.5f,"lon":%.5f},"tags":["alpha","beta"],"ok":true}`,
			i, 1000+i*7, rng.IntN(10000), 48+rng.Float64(), 2+rng.Float64())
		msgs = append(msgs, interopMsg{name: fmt.Sprintf("json/%d", i), typ: MessageText, p: m, json: true})
	}

	const intl = "héllo wörld ✓ 日本語 🎉 "
	nonASCII := []byte(strings.Repeat(intl, 70000/len(intl)+1)[:70000-len(intl)] + intl)
	msgs = append(msgs,
		interopMsg{name: "text/non-ascii-short", typ: MessageText, p: []byte(intl)},
		interopMsg{name: "text/non-ascii-70000", typ: MessageText, p: nonASCII},
		interopMsg{name: "text/non-ascii-70000-fragmented", typ: MessageText, p: nonASCII, fragmented: true},
		interopMsg{name: "text/65536-fragmented", typ: MessageText, p: text(65536), fragmented: true},
		interopMsg{name: "binary/1MiB-random-fragmented", typ: MessageBinary, p: random(1 << 20), fragmented: true},
		interopMsg{name: "text/1MiB-lines-fragmented", typ: MessageText, p: lines[:1<<20], compressible: true, fragmented: true})
	return msgs
}

// writeCorpus writes msgs in the scripts' format: a type byte ('t' or
// 'b', upper case to send in fragments), a big-endian uint32 length, the
// payload.
func writeCorpus(t *testing.T, msgs []interopMsg) string {
	t.Helper()
	var b []byte
	for _, m := range msgs {
		typ := byte('t')
		if m.typ == MessageBinary {
			typ = 'b'
		}
		if m.fragmented {
			typ -= 'a' - 'A'
		}
		b = append(b, typ)
		b = binary.BigEndian.AppendUint32(b, uint32(len(m.p)))
		b = append(b, m.p...)
	}
	path := filepath.Join(t.TempDir(), "corpus")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// closeSpec says who starts the closing handshake, and with what.
type closeSpec struct {
	By     string     `json:"by"` // "peer" or "us"
	Code   StatusCode `json:"code"`
	Reason string     `json:"reason"`
}

// closeFor takes turns over both sides and the codes 1000 and 4000, so
// that every peer and role sees each combination.
func closeFor(i int) closeSpec {
	by, reason := "peer", "peer done ✓"
	if i%2 == 1 {
		by, reason = "us", "go done ✓"
	}
	code := StatusNormalClosure
	if i/2%2 == 1 {
		code = 4000
	}
	return closeSpec{by, code, reason}
}

// interopCase is one negotiation: our options, the peer's, and what both
// must settle.
type interopCase struct {
	name      string
	mode      CompressionMode
	bits      int // our CompressionWindowBits
	threshold int // our CompressionThreshold
	deflate   any // the peer's compression settings, as its script takes them
	// want is what we settle (nil: no compression). The peer must settle
	// the mirror image: its compressor's takeover and window are our
	// decompressor's, and its decompressor expects our takeover.
	want *deflateParams
	// peerRecvBits is the peer's decompressor window, which may be larger
	// than our compressor's.
	peerRecvBits int
}

// settled is a shorthand for the deflateParams a case wants.
func settled(threshold int, sendTakeover bool, sendBits int, recvTakeover bool, recvBits int) *deflateParams {
	return &deflateParams{threshold: threshold, sendTakeover: sendTakeover, sendBits: sendBits, recvTakeover: recvTakeover, recvBits: recvBits}
}

const (
	takeover   = true
	noTakeover = false
)

type peerConfig struct {
	Role    string    `json:"role"`
	URL     string    `json:"url,omitempty"`
	Corpus  string    `json:"corpus"`
	Deflate any       `json:"deflate"`
	Close   closeSpec `json:"close"`
}

// peerView is what a peer reports it settled, from its own side.
type peerView struct {
	LocalNoContextTakeover  bool `json:"localNoContextTakeover"`
	RemoteNoContextTakeover bool `json:"remoteNoContextTakeover"`
	LocalMaxWindowBits      int  `json:"localMaxWindowBits"`
	RemoteMaxWindowBits     int  `json:"remoteMaxWindowBits"`
}

// peerEvent is one line of a peer's report.
type peerEvent struct {
	Event      string    `json:"event"`
	Port       int       `json:"port"`
	Request    *string   `json:"request"`  // Sec-WebSocket-Extensions offered
	Response   *string   `json:"response"` // and accepted
	Extensions string    `json:"extensions"`
	View       *peerView `json:"view"`
	Index      int       `json:"index"`
	Error      string    `json:"error"`
	Code       int       `json:"code"`
	Reason     string    `json:"reason"`
	line       string
}

// peerProc is a running peer script.
type peerProc struct {
	t       *testing.T
	name    string
	lines   chan string   // its stdout, line by line; closed at EOF
	stop    chan struct{} // closed when the test ends: lines are dropped
	exited  chan struct{} // closed once it exited and was waited for
	waitErr error         // set before exited is closed
	stderr  string        // path of the file holding its stderr
}

// startPeer starts a peer script with cfg. When the test ends the process
// is killed if still running, and waited for.
func startPeer(t *testing.T, p interopPeer, cfg peerConfig) *peerProc {
	t.Helper()
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pp := &peerProc{
		t:      t,
		name:   p.name,
		lines:  make(chan string),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
		stderr: filepath.Join(t.TempDir(), "stderr"),
	}
	// A file, not a pipe, so that no goroutine of ours copies it.
	f, err := os.Create(pp.stderr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.prog, p.script, string(arg))
	cmd.Stderr = f
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	f.Close()
	if err != nil {
		t.Fatalf("starting %s: %v", p.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			select {
			case pp.lines <- sc.Text():
			case <-pp.stop:
			}
		}
		io.Copy(io.Discard, stdout) // after a line too long, if any
		close(pp.lines)
		pp.waitErr = cmd.Wait()
		close(pp.exited)
	}()
	t.Cleanup(func() {
		close(pp.stop)
		select {
		case <-pp.exited:
			return
		default:
		}
		cmd.Process.Kill()
		timer := time.NewTimer(interopWait)
		defer timer.Stop()
		select {
		case <-pp.exited:
		case <-timer.C:
			t.Errorf("%s still running %v after being killed", p.name, interopWait)
		}
	})
	return pp
}

func (pp *peerProc) stderrText() string {
	b, _ := os.ReadFile(pp.stderr)
	return string(b)
}

// next returns the peer's next report line, or false at the end of its
// output. It fails the test when nothing comes within interopWait.
func (pp *peerProc) next() (peerEvent, bool) {
	pp.t.Helper()
	timer := time.NewTimer(interopWait)
	defer timer.Stop()
	select {
	case line, ok := <-pp.lines:
		if !ok {
			return peerEvent{}, false
		}
		ev := peerEvent{line: line}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			pp.t.Fatalf("%s wrote %q: %v", pp.name, line, err)
		}
		return ev, true
	case <-timer.C:
		pp.t.Fatalf("%s reported nothing for %v; its stderr:\n%s", pp.name, interopWait, pp.stderrText())
		panic("unreachable")
	}
}

// rest returns the peer's remaining report lines, up to the end of its
// output, and waits for it to exit with status 0.
func (pp *peerProc) rest() []peerEvent {
	pp.t.Helper()
	var evs []peerEvent
	for {
		ev, ok := pp.next()
		if !ok {
			break
		}
		evs = append(evs, ev)
	}
	timer := time.NewTimer(interopWait)
	defer timer.Stop()
	select {
	case <-pp.exited:
	case <-timer.C:
		pp.t.Fatalf("%s closed its output but did not exit within %v", pp.name, interopWait)
	}
	if pp.waitErr != nil {
		pp.t.Errorf("%s: %v; its stderr:\n%s", pp.name, pp.waitErr, pp.stderrText())
	}
	return evs
}

type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c}, nil
}

type countingConnKey struct{}

// ourResult is what our side of an exchange saw.
type ourResult struct {
	params    *deflateParams
	problems  []string // failed operations and corrupted messages
	readWire  []int64  // bytes read for each message: the peer's compression
	writeWire []int64  // bytes written for each message: ours
	closeErr  error    // what the read after the last message returned
}

// exchange runs our side: as the server it reads each message and sends
// it back, as the client it sends each and reads it back; either way each
// message read must equal the corpus's. Then the closing handshake, which
// we start with CloseWrite when cl says so.
func exchange(c *Conn, cc *countingConn, msgs []interopMsg, cl closeSpec) ourResult {
	res := ourResult{params: negotiatedOf(c)}
	// Each operation gets its own time, however long the corpus.
	read := func(i int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), interopWait)
		defer cancel()
		before := cc.read.Load()
		typ, p, err := c.Read(ctx)
		res.readWire = append(res.readWire, cc.read.Load()-before)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("reading %s: %v", msgs[i].name, err))
			return false
		}
		if typ != msgs[i].typ || !bytes.Equal(p, msgs[i].p) {
			res.problems = append(res.problems, fmt.Sprintf("%s arrived as %v of %d bytes (%s)", msgs[i].name, typ, len(p), firstDiff(p, msgs[i].p)))
		}
		return true
	}
	write := func(i int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), interopWait)
		defer cancel()
		before := cc.written.Load()
		var err error
		if msgs[i].fragmented {
			err = writeInThirds(ctx, c, msgs[i].typ, msgs[i].p)
		} else {
			err = c.Write(ctx, msgs[i].typ, msgs[i].p)
		}
		res.writeWire = append(res.writeWire, cc.written.Load()-before)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("writing %s: %v", msgs[i].name, err))
			return false
		}
		return true
	}
	for i := range msgs {
		var ok bool
		if c.rs.client {
			ok = write(i) && read(i)
		} else {
			ok = read(i) && write(i)
		}
		if !ok {
			return res
		}
	}
	if cl.By == "us" {
		if err := c.CloseWrite(cl.Code, cl.Reason); err != nil {
			res.problems = append(res.problems, fmt.Sprintf("CloseWrite: %v", err))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	_, _, res.closeErr = c.Read(ctx)
	return res
}

// writeInThirds writes a message through Writer in three pieces, cut
// one and two bytes past the thirds (the scripts cut the same way).
func writeInThirds(ctx context.Context, c *Conn, typ MessageType, p []byte) error {
	w, err := c.Writer(ctx, typ)
	if err != nil {
		return err
	}
	cuts := []int{0, len(p)/3 + 1, 2*len(p)/3 + 2, len(p)}
	for k := range 3 {
		if _, err := w.Write(p[cuts[k]:cuts[k+1]]); err != nil {
			return err
		}
	}
	return w.Close()
}

func firstDiff(got, want []byte) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Sprintf("first difference at byte %d", i)
}

// runPeerClient has the peer dial an httptest server that accepts with
// the case's options and runs exchange.
func runPeerClient(t *testing.T, p interopPeer, tc interopCase, cl closeSpec) {
	msgs := interopCorpus()
	results := make(chan ourResult, 1)
	handlers := make(chan struct{}, 1) // holds a token while the handler runs
	t.Cleanup(func() {
		// After the peer is gone (cleanups run last first), the handler
		// ends within interopWait.
		timer := time.NewTimer(interopWait)
		defer timer.Stop()
		select {
		case handlers <- struct{}{}:
		case <-timer.C:
			t.Errorf("our handler still running %v after the test", interopWait)
		}
	})
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers <- struct{}{}
		defer func() { <-handlers }()
		c, err := Accept(w, r, &AcceptOptions{
			Compression:           tc.mode,
			CompressionWindowBits: tc.bits,
			CompressionThreshold:  tc.threshold,
		})
		if err != nil {
			results <- ourResult{problems: []string{fmt.Sprintf("Accept: %v", err)}}
			return
		}
		defer c.CloseNow()
		results <- exchange(c, r.Context().Value(countingConnKey{}).(*countingConn), msgs, cl)
	}))
	s.Listener = countingListener{s.Listener}
	s.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, countingConnKey{}, c)
	}
	s.Start()
	t.Cleanup(s.Close)

	pp := startPeer(t, p, peerConfig{Role: "client", URL: wsURL(s), Corpus: writeCorpus(t, msgs), Deflate: tc.deflate, Close: cl})
	evs := pp.rest()
	timer := time.NewTimer(interopWait)
	defer timer.Stop()
	var res ourResult
	select {
	case res = <-results:
	case <-timer.C:
		t.Fatalf("our server did not finish within %v of %s exiting; %s said:\n%s", interopWait, p.name, p.name, eventLines(evs))
	}
	checkInterop(t, p, tc, cl, msgs, res, evs)
}

// runPeerServer has Dial, with the case's options, reach the peer as a
// server, and runs exchange.
func runPeerServer(t *testing.T, p interopPeer, tc interopCase, cl closeSpec) {
	msgs := interopCorpus()
	pp := startPeer(t, p, peerConfig{Role: "server", Corpus: writeCorpus(t, msgs), Deflate: tc.deflate, Close: cl})
	ev, ok := pp.next()
	if !ok || ev.Event != "listening" {
		t.Fatalf("%s reported %q, want listening; its stderr:\n%s", p.name, ev.line, pp.stderrText())
	}

	tr, dialed := wireTransport()
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), interopWait)
	defer cancel()
	c, resp, err := Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/", ev.Port), &DialOptions{
		HTTPClient:            &http.Client{Transport: tr},
		Compression:           tc.mode,
		CompressionWindowBits: tc.bits,
		CompressionThreshold:  tc.threshold,
	})
	if err != nil {
		evs := pp.rest()
		t.Fatalf("Dial %s: %v; %s said:\n%s", p.name, err, p.name, eventLines(evs))
	}
	defer c.CloseNow()
	t.Logf("%s answered Sec-WebSocket-Extensions: %q", p.name, resp.Header.Values("Sec-WebSocket-Extensions"))
	res := exchange(c, <-dialed, msgs, cl)
	checkInterop(t, p, tc, cl, msgs, res, pp.rest())
}

func eventLines(evs []peerEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		b.WriteString("\t" + ev.line + "\n")
	}
	return b.String()
}

// checkInterop checks both sides' reports of one run: the compression
// they settled, the messages, the closing handshake and the wire sizes.
func checkInterop(t *testing.T, p interopPeer, tc interopCase, cl closeSpec, msgs []interopMsg, res ourResult, evs []peerEvent) {
	t.Helper()
	for _, pr := range res.problems {
		t.Errorf("our side: %s", pr)
	}

	// What both sides settled.
	switch {
	case res.params == nil && tc.want != nil:
		t.Errorf("we settled no compression, want %+v", *tc.want)
	case res.params != nil && tc.want == nil:
		t.Errorf("we settled %+v, want no compression", *res.params)
	case res.params != nil && *res.params != *tc.want:
		t.Errorf("we settled %+v, want %+v", *res.params, *tc.want)
	}
	var opened, closed *peerEvent
	next := 0
	for i := range evs {
		ev := &evs[i]
		switch ev.Event {
		case "open":
			opened = ev
		case "message":
			if ev.Index != next || ev.Index >= len(msgs) {
				t.Errorf("%s reported message %d, want %d", p.name, ev.Index, next)
			} else if ev.Error != "" {
				t.Errorf("%s: %s: %s", p.name, msgs[ev.Index].name, ev.Error)
			}
			next = ev.Index + 1
		case "closed":
			closed = ev
		default:
			t.Errorf("%s: %s", p.name, ev.line)
		}
	}
	if next != len(msgs) {
		t.Errorf("%s reported %d messages, want %d", p.name, next, len(msgs))
	}
	if opened == nil {
		t.Fatalf("%s never reported the connection open; it said:\n%s", p.name, eventLines(evs))
	}
	t.Logf("offer %s, response %s; %s settled %s; we settled %+v", quoteOrNone(opened.Request), quoteOrNone(opened.Response), p.name, viewString(opened.View), derefOrNil(res.params))
	if tc.want == nil {
		if opened.View != nil || opened.Extensions != "" {
			t.Errorf("%s settled %q %+v, want no extension", p.name, opened.Extensions, *opened.View)
		}
	} else {
		want := peerView{
			LocalNoContextTakeover:  !tc.want.recvTakeover,
			RemoteNoContextTakeover: !tc.want.sendTakeover,
			LocalMaxWindowBits:      tc.want.recvBits,
			RemoteMaxWindowBits:     tc.peerRecvBits,
		}
		if opened.Extensions != "permessage-deflate" {
			t.Errorf("%s lists extensions %q, want permessage-deflate", p.name, opened.Extensions)
		}
		if opened.View == nil || *opened.View != want {
			t.Errorf("%s settled %s, want %+v", p.name, viewString(opened.View), want)
		}
	}

	// The closing handshake: the side that closes sends code and reason;
	// we answer with the code alone, the peers echo both.
	wantPeer := CloseError{Code: cl.Code}
	if cl.By == "us" {
		wantPeer.Reason = cl.Reason
	}
	if closed == nil {
		t.Errorf("%s never reported the close", p.name)
	} else if got := (CloseError{StatusCode(closed.Code), closed.Reason}); got != wantPeer {
		t.Errorf("%s saw close %d %q, want %d %q", p.name, got.Code, got.Reason, wantPeer.Code, wantPeer.Reason)
	}
	var ce CloseError
	if !errors.As(res.closeErr, &ce) || ce != (CloseError{cl.Code, cl.Reason}) {
		t.Errorf("the last read returned %v, want %v", res.closeErr, CloseError{cl.Code, cl.Reason})
	}

	if len(res.problems) == 0 {
		checkWire(t, p, tc, msgs, res)
	}
}

// checkWire checks from the wire sizes that each side compressed as
// settled: a compressible mebibyte shrinks when compression is on, and
// similar JSON messages shrink further under context takeover only.
func checkWire(t *testing.T, p interopPeer, tc interopCase, msgs []interopMsg, res ourResult) {
	t.Helper()
	for _, dir := range []struct {
		who      string
		wire     []int64
		takeover bool
	}{
		{"we", res.writeWire, tc.want != nil && tc.want.sendTakeover},
		{p.name, res.readWire, tc.want != nil && tc.want.recvTakeover},
	} {
		var jsonWire []int64
		for i, m := range msgs {
			n := dir.wire[i]
			if m.compressible {
				if tc.want != nil && n > int64(len(m.p)/16) {
					t.Errorf("%s sent %s as %d bytes: not compressed", dir.who, m.name, n)
				}
				if tc.want == nil && n < int64(len(m.p)) {
					t.Errorf("%s sent %s as %d bytes without compression", dir.who, m.name, n)
				}
			}
			if m.json {
				jsonWire = append(jsonWire, n)
			}
		}
		if tc.want == nil {
			continue
		}
		// The first JSON message has no similar one before it; each later
		// one is mostly a copy of the one before when the context is kept.
		first, later := jsonWire[0], jsonWire[len(jsonWire)/2:]
		var sum int64
		for _, n := range later {
			sum += n
		}
		mean := float64(sum) / float64(len(later))
		switch {
		case dir.takeover && mean > float64(first)/2:
			t.Errorf("%s sent similar JSON messages as %d bytes first, then %.0f on average: context takeover not in use", dir.who, first, mean)
		case !dir.takeover && mean < float64(first)*3/4:
			t.Errorf("%s sent similar JSON messages as %d bytes first, then %.0f on average: context kept without takeover", dir.who, first, mean)
		}
		t.Logf("%s sent similar JSON messages as %d bytes first, then %.0f on average", dir.who, first, mean)
	}
}

func quoteOrNone(s *string) string {
	if s == nil {
		return "(none)"
	}
	return fmt.Sprintf("%q", *s)
}

func viewString(v *peerView) string {
	if v == nil {
		return "no compression"
	}
	return fmt.Sprintf("%+v", *v)
}

// negotiatedOf returns what c's negotiation settled, nil for no
// compression: the parameters alone, not the compressor that the
// connection keeps beside them.
func negotiatedOf(c *Conn) *deflateParams {
	if c.deflate == nil {
		return nil
	}
	p := *c.deflate
	p.def, p.defTimer = nil, nil
	return &p
}

func derefOrNil(p *deflateParams) any {
	if p == nil {
		return "no compression"
	}
	return *p
}

// runInterop runs each case with the peer as the client and as the
// server.
func runInterop(t *testing.T, p interopPeer, asClient, asServer []interopCase) {
	requirePeer(t, p)
	for _, role := range []struct {
		name  string
		cases []interopCase
		run   func(*testing.T, interopPeer, interopCase, closeSpec)
	}{
		{"PeerClient", asClient, runPeerClient},
		{"PeerServer", asServer, runPeerServer},
	} {
		t.Run(role.name, func(t *testing.T) {
			for i, tc := range role.cases {
				cl := closeFor(i)
				t.Run(fmt.Sprintf("%s/close-by-%s-%d", tc.name, cl.By, cl.Code), func(t *testing.T) {
					t.Parallel()
					role.run(t, p, tc, cl)
				})
			}
		})
	}
}

// nodeDeflate is a perMessageDeflate option for node-ws; the script adds
// threshold 0, so that it compresses every message.
type nodeDeflate map[string]any

func TestInteropNode(t *testing.T) {
	t.Parallel()
	// node-ws offers client_max_window_bits unless told a number or false.
	asClient := []interopCase{
		{name: "off", mode: CompressionDisabled, deflate: nodeDeflate{}},
		{name: "peer-off", mode: CompressionContextTakeover, deflate: false},
		{name: "no-takeover", mode: CompressionNoContextTakeover, threshold: 1, deflate: nodeDeflate{},
			want: settled(1, noTakeover, 15, noTakeover, 15), peerRecvBits: 15},
		{name: "takeover", mode: CompressionContextTakeover, deflate: nodeDeflate{},
			want: settled(128, takeover, 15, takeover, 15), peerRecvBits: 15},
		{name: "takeover/peer-asks-server-10-client-9", mode: CompressionContextTakeover, threshold: 1,
			deflate: nodeDeflate{"serverMaxWindowBits": 10, "clientMaxWindowBits": 9},
			want:    settled(1, takeover, 10, takeover, 9), peerRecvBits: 10},
		{name: "takeover-bits-9", mode: CompressionContextTakeover, bits: 9, deflate: nodeDeflate{},
			want: settled(128, takeover, 9, takeover, 9), peerRecvBits: 9},
		{name: "takeover-bits-10/peer-no-client-takeover-server-9", mode: CompressionContextTakeover, bits: 10,
			deflate: nodeDeflate{"clientNoContextTakeover": true, "serverMaxWindowBits": 9},
			want:    settled(128, takeover, 9, noTakeover, 10), peerRecvBits: 9},
		{name: "takeover/peer-no-server-takeover", mode: CompressionContextTakeover,
			deflate: nodeDeflate{"serverNoContextTakeover": true},
			want:    settled(128, noTakeover, 15, takeover, 15), peerRecvBits: 15},
		{name: "no-takeover-bits-10/peer-asks-10-10", mode: CompressionNoContextTakeover, bits: 10,
			deflate: nodeDeflate{"serverMaxWindowBits": 10, "clientMaxWindowBits": 10},
			want:    settled(128, noTakeover, 10, noTakeover, 10), peerRecvBits: 10},
		// zlib cannot compress with an 8-bit window: we ask for 9.
		{name: "takeover-bits-8", mode: CompressionContextTakeover, bits: 8, deflate: nodeDeflate{},
			want: settled(128, takeover, 8, takeover, 9), peerRecvBits: 8},
	}
	// Our offers: no-takeover names both no_context_takeover parameters;
	// windows under 15 name server_max_window_bits; all name
	// client_max_window_bits.
	asServer := []interopCase{
		{name: "off", mode: CompressionDisabled, deflate: nodeDeflate{}},
		{name: "peer-off", mode: CompressionContextTakeover, deflate: false},
		{name: "no-takeover", mode: CompressionNoContextTakeover, threshold: 1, deflate: nodeDeflate{},
			want: settled(1, noTakeover, 15, noTakeover, 15), peerRecvBits: 15},
		{name: "takeover", mode: CompressionContextTakeover, deflate: nodeDeflate{},
			want: settled(128, takeover, 15, takeover, 15), peerRecvBits: 15},
		{name: "takeover-bits-10/peer-client-9", mode: CompressionContextTakeover, bits: 10, threshold: 1,
			deflate: nodeDeflate{"clientMaxWindowBits": 9},
			want:    settled(1, takeover, 9, takeover, 10), peerRecvBits: 9},
		{name: "takeover/peer-server-9-no-client-takeover", mode: CompressionContextTakeover,
			deflate: nodeDeflate{"serverMaxWindowBits": 9, "clientNoContextTakeover": true},
			want:    settled(128, noTakeover, 15, takeover, 9), peerRecvBits: 15},
		{name: "takeover-bits-9/peer-no-server-takeover-client-10", mode: CompressionContextTakeover, bits: 9,
			deflate: nodeDeflate{"serverNoContextTakeover": true, "clientMaxWindowBits": 10},
			want:    settled(128, takeover, 9, noTakeover, 9), peerRecvBits: 10},
		{name: "no-takeover-bits-10/peer-server-9", mode: CompressionNoContextTakeover, bits: 10,
			deflate: nodeDeflate{"serverMaxWindowBits": 9},
			want:    settled(128, noTakeover, 10, noTakeover, 9), peerRecvBits: 15},
		{name: "takeover-bits-8", mode: CompressionContextTakeover, bits: 8, deflate: nodeDeflate{},
			want: settled(128, takeover, 8, takeover, 8), peerRecvBits: 15},
	}
	runInterop(t, nodePeer, asClient, asServer)
}

// pyDeflate holds the keyword arguments of the peer's permessage-deflate
// factory (Client- or ServerPerMessageDeflateFactory).
type pyDeflate map[string]any

func TestInteropPython(t *testing.T) {
	t.Parallel()
	// The client factory offers client_max_window_bits unless told None;
	// the package's default client offer is just that.
	asClient := []interopCase{
		{name: "off", mode: CompressionDisabled, deflate: "default"},
		{name: "peer-off", mode: CompressionContextTakeover, deflate: nil},
		{name: "no-takeover", mode: CompressionNoContextTakeover, threshold: 1, deflate: "default",
			want: settled(1, noTakeover, 15, noTakeover, 15), peerRecvBits: 15},
		{name: "takeover/peer-asks-server-10-client-9", mode: CompressionContextTakeover,
			deflate: pyDeflate{"server_max_window_bits": 10, "client_max_window_bits": 9},
			want:    settled(128, takeover, 10, takeover, 9), peerRecvBits: 10},
		{name: "takeover-bits-9", mode: CompressionContextTakeover, bits: 9, threshold: 1, deflate: pyDeflate{},
			want: settled(1, takeover, 9, takeover, 9), peerRecvBits: 9},
		{name: "takeover-bits-10/peer-no-client-takeover-server-9", mode: CompressionContextTakeover, bits: 10,
			deflate: pyDeflate{"client_no_context_takeover": true, "server_max_window_bits": 9},
			want:    settled(128, takeover, 9, noTakeover, 10), peerRecvBits: 9},
		{name: "takeover/peer-no-server-takeover-client-10", mode: CompressionContextTakeover,
			deflate: pyDeflate{"server_no_context_takeover": true, "client_max_window_bits": 10},
			want:    settled(128, noTakeover, 15, takeover, 10), peerRecvBits: 15},
		{name: "no-takeover-bits-10/peer-asks-10-10", mode: CompressionNoContextTakeover, bits: 10,
			deflate: pyDeflate{"server_max_window_bits": 10, "client_max_window_bits": 10},
			want:    settled(128, noTakeover, 10, noTakeover, 10), peerRecvBits: 10},
		// The package fails the handshake when asked to compress with an
		// 8-bit window (zlib cannot), so we ask it for 9.
		{name: "takeover-bits-8", mode: CompressionContextTakeover, bits: 8, deflate: pyDeflate{},
			want: settled(128, takeover, 8, takeover, 9), peerRecvBits: 8},
		{name: "takeover-bits-8/peer-no-client-bits", mode: CompressionContextTakeover, bits: 8,
			deflate: pyDeflate{"client_max_window_bits": nil},
			want:    settled(128, takeover, 8, takeover, 15), peerRecvBits: 8},
	}
	// The package's default server settings ask for 12-bit windows.
	asServer := []interopCase{
		{name: "off", mode: CompressionDisabled, deflate: "default"},
		{name: "peer-off", mode: CompressionContextTakeover, deflate: nil},
		{name: "no-takeover/peer-default", mode: CompressionNoContextTakeover, threshold: 1, deflate: "default",
			want: settled(1, noTakeover, 12, noTakeover, 12), peerRecvBits: 12},
		{name: "takeover", mode: CompressionContextTakeover, deflate: pyDeflate{},
			want: settled(128, takeover, 15, takeover, 15), peerRecvBits: 15},
		{name: "takeover-bits-10/peer-client-9", mode: CompressionContextTakeover, bits: 10,
			deflate: pyDeflate{"client_max_window_bits": 9},
			want:    settled(128, takeover, 9, takeover, 10), peerRecvBits: 9},
		{name: "takeover/peer-server-9-no-client-takeover", mode: CompressionContextTakeover, threshold: 1,
			deflate: pyDeflate{"server_max_window_bits": 9, "client_no_context_takeover": true},
			want:    settled(1, noTakeover, 15, takeover, 9), peerRecvBits: 15},
		{name: "takeover-bits-9/peer-no-server-takeover-client-10", mode: CompressionContextTakeover, bits: 9,
			deflate: pyDeflate{"server_no_context_takeover": true, "client_max_window_bits": 10},
			want:    settled(128, takeover, 9, noTakeover, 9), peerRecvBits: 10},
	}
	runInterop(t, pythonPeer, asClient, asServer)
}
