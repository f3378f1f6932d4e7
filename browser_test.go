//go:build unix

package websocket

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// chromiumPath is the browser TestBrowserDial runs.
const chromiumPath = "/usr/bin/chromium"

// TestBrowserDial builds internal/wasmtest with GOOS=js GOARCH=wasm and
// has headless Chromium run it against a server of ours: the Dial of
// dial_js.go, over the browser's WebSocket, sending messages of every
// length class whole and in fragments, from two goroutines, with a
// context that ends, Ping, closes from either side with codes a browser
// may and may not send, CloseWrite, the read limit, the server's
// keepalive and compression, a server's text that is not UTF-8, NetConn
// and wsjson, and dials that fail. The program reports what it saw, a
// line per check; the test checks every line, and how each connection
// ended as the server saw it.
//
// Without Chromium the test is skipped, unless WEBSOCKET_REQUIRE_BROWSER=1
// says it must run.
func TestBrowserDial(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("WEBSOCKET_REQUIRE_BROWSER") == "1" {
			t.Fatalf("WEBSOCKET_REQUIRE_BROWSER=1 but no browser: %v", err)
		}
		t.Skipf("no browser (install Chromium at %s, as Debian's chromium package does, to run it): %v", chromiumPath, err)
	}
	t.Parallel()
	dir := t.TempDir()
	wasm, wasmExec := buildWasmTest(t, dir)

	srv := newWasmServer(t, wasm, wasmExec)
	host := strings.TrimPrefix(srv.URL, "http://")
	chromium := startHeadless(t, srv.URL+"/")

	var res wasmResult
	timer := time.NewTimer(time.Minute)
	defer timer.Stop()
	select {
	case res = <-srv.results:
	case <-chromium.exited:
		t.Fatalf("chromium exited before the page reported: %v", chromium.err)
	case <-timer.C:
		t.Fatal("the page reported nothing within a minute")
	}

	if want := wantWasmLines(host); !slices.Equal(res.Lines, want) {
		t.Errorf("the page reports:\n\t%s\nwant:\n\t%s", strings.Join(res.Lines, "\n\t"), strings.Join(want, "\n\t"))
	}
	if res.ExitCode == nil {
		t.Error("the program did not exit")
	} else if *res.ExitCode != 0 {
		t.Errorf("the program exited with %d, want 0", *res.ExitCode)
	}
	if t.Failed() {
		t.Logf("console:\n\t%s", strings.Join(res.Output, "\n\t"))
	}

	ended := srv.ended(t)
	wantEnded := map[string]string{
		"sizes":        "read: websocket: close 1000 (normal closure): done",
		"server-close": "Close: <nil>",
		"drop":         "CloseNow: <nil>",
		"policy":       "Close: <nil>",
		// Chromium fails the connection with a close frame of its own.
		"bad-text": "read: websocket: close 1002 (protocol error): Invalid UTF-8 in text frame",
		// Browsers may not send 1001: it goes as 1000, with the reason.
		"going-away": "read: websocket: close 1000 (normal closure): leaving",
		"private":    "read: websocket: close 4000 (private use): private",
		"no-code":    "read: websocket: close 1005 (no status received)",
		"close-now":  "read: websocket: close 1005 (no status received)",
		// The Conn failed the connection with 1009; the browser sent 1000.
		"read-limit":  "read: websocket: close 1000 (normal closure): message exceeds the read limit of 1000 bytes",
		"close-write": "read: websocket: close 1000 (normal closure): bye",
		"keepalive":   "read: websocket: close 1000 (normal closure)",
		"deflate":     "read: websocket: close 1000 (normal closure)",
		"netconn":     "read: websocket: close 1000 (normal closure)",
		"netconn-eof": "Close: <nil>",
		"json":        "read: websocket: close 1000 (normal closure): message exceeds the read limit of 100 bytes",
	}
	for name, want := range wantEnded {
		if got, ok := ended[name]; !ok {
			t.Errorf("the server saw no connection %q", name)
		} else if got != want {
			t.Errorf("connection %q ended on the server with %q, want %q", name, got, want)
		}
	}
	for name, got := range ended {
		if _, ok := wantEnded[name]; !ok {
			t.Errorf("the server saw an unexpected connection %q, which ended with %q", name, got)
		}
	}
}

// wantWasmLines is what internal/wasmtest reports when every check holds,
// served from host.
func wantWasmLines(host string) []string {
	lines := []string{`dial: subprotocol "echo"; response "101 Switching Protocols", Sec-WebSocket-Protocol "echo"`}
	for _, typ := range []string{"text", "binary"} {
		for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
			lines = append(lines, fmt.Sprintf("%s %d: echoed intact", typ, n))
		}
	}
	return append(lines,
		"Writer, text of 10098 bytes in writes of 1000: echoed intact",
		"Writer, binary of 200000 bytes in writes of 50000: echoed intact",
		"written by one goroutine, read by another: 100 messages, in order and intact",
		"read with a context that ends: websocket: read: context deadline exceeded; then: echoed intact",
		"Writer whose context ends after its first frame: write: websocket: write: context deadline exceeded; close: websocket: write: context deadline exceeded; then: echoed intact",
		"ping: websocket: ping: a browser's WebSocket cannot send pings; the browser answers the server's pings itself (unsupported operation); errors.Is(err, errors.ErrUnsupported): true; then: echoed intact",
		"close: <nil>",
		"write after close: websocket: write: connection closed: close 1000 (normal closure): done; errors.Is(err, websocket.ErrClosed): true",
		"server-close: websocket: close 4001 (private use): going, going, gone; CloseStatus 4001",
		"server-close: then write: websocket: write: connection closed: close 4001 (private use): going, going, gone",
		"drop: websocket: connection lost: the browser reports the WebSocket closed with 1006 (abnormal closure); CloseStatus 1006",
		"drop: then write: websocket: write: connection closed: connection lost: the browser reports the WebSocket closed with 1006 (abnormal closure)",
		"policy: websocket: close 1008 (policy violation): no, thank you; CloseStatus 1008",
		"policy: then write: websocket: write: connection closed: close 1008 (policy violation): no, thank you",
		"bad-text: websocket: connection lost: the browser reports the WebSocket closed with 1006 (abnormal closure); CloseStatus 1006",
		"bad-text: then write: websocket: write: connection closed: connection lost: the browser reports the WebSocket closed with 1006 (abnormal closure)",
		"read-limit: websocket: message exceeds the read limit of 1000 bytes: connection failed with 1009 (message too big); CloseStatus 1009",
		"read-limit: then write: websocket: write: connection closed: message exceeds the read limit of 1000 bytes: connection failed with 1009 (message too big)",
		`going-away: Close(1001, "leaving"): <nil>`,
		`private: Close(4000, "private"): <nil>`,
		`no-code: Close(1005, ""): <nil>`,
		"close-now: CloseNow: <nil>",
		"close-write: CloseWrite: <nil>; read: websocket: close 1000 (normal closure)",
		"keepalive: after 1.5 s of quiet: echoed intact",
		"keepalive: close: <nil>",
		// The server takes Chromium's offer without parameters.
		`deflate: Sec-WebSocket-Extensions "permessage-deflate"`,
		"deflate: text of 99000 bytes: echoed intact",
		"deflate: close: <nil>",
		`netconn: read "helloworld", <nil>`,
		"netconn: past the deadline: websocket: read: i/o timeout; Timeout true, os.ErrDeadlineExceeded true",
		`netconn: deadline lifted: "again", <nil>`,
		"netconn: Close: <nil>; the waiting Read: websocket: read: use of closed network connection, net.ErrClosed true",
		"netconn-eof: read: EOF; Close: <nil>",
		"json: echoed {Player:ann X:1 Y:2}, <nil>",
		"json: Write(func): websocket: json: unsupported type: func()",
		`json: after "{bad": {Player: X:0 Y:0}, websocket: json: invalid character 'b' looking for beginning of object key string`,
		`json: after "send 10": {Player: X:0 Y:0}, websocket: json: got a binary message, but JSON messages are text (for JSON in binary messages, read them with Conn.Read and decode with json.Unmarshal)`,
		`json: after "{\"Player\":\"bob\"}": {Player:bob X:0 Y:0}, <nil>`,
		"json: over the read limit: websocket: message exceeds the read limit of 100 bytes: connection failed with 1009 (message too big); CloseStatus 1009",
		"dial ws://"+host+"/missing: conn false, response false: websocket: dial ws://"+host+"/missing: the browser could not open the connection, and does not say why (its console may)",
		"dial ws://"+host+"/hang: conn false, response false: websocket: dial ws://"+host+"/hang: context deadline exceeded",
		"dial ftp://"+host+`/echo: conn false, response false: websocket: URL scheme "ftp" is not ws, wss, http or https`,
		"dial ws://"+host+"/echo?name=bad-subprotocol: conn false, response false: websocket: dial ws://"+host+"/echo?name=bad-subprotocol: the browser refused to open it: Failed to construct 'WebSocket': The subprotocol 'two words' is invalid.",
		"done",
	)
}

// buildWasmTest builds internal/wasmtest for the browser into dir, and
// finds the wasm_exec.js of the same Go.
func buildWasmTest(t *testing.T, dir string) (wasm, wasmExec string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	wasm = filepath.Join(dir, "test.wasm")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", wasm, "./internal/wasmtest")
	// GOFLAGS may hold -race, which js/wasm does not have.
	cmd.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building internal/wasmtest for js/wasm: %v\n%s", err, out)
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	root := strings.TrimSpace(string(out))
	// lib/wasm since Go 1.24, misc/wasm before.
	for _, p := range []string{"lib/wasm/wasm_exec.js", "misc/wasm/wasm_exec.js"} {
		wasmExec = filepath.Join(root, p)
		if _, err := os.Stat(wasmExec); err == nil {
			return wasm, wasmExec
		}
	}
	t.Fatalf("no wasm_exec.js in %s/lib/wasm or %s/misc/wasm", root, root)
	return
}

// wasmResult is what the page posts once the program has exited.
type wasmResult struct {
	Lines    []string `json:"lines"`
	Output   []string `json:"output"`   // the console's
	ExitCode *int     `json:"exitCode"` // nil if the program never exited
}

// wasmServer serves the page, the program, and the endpoints it dials.
type wasmServer struct {
	*httptest.Server
	results chan wasmResult

	handlers sync.WaitGroup // the echo handlers
	mu       sync.Mutex
	endings  map[string]string // how each connection ended, by name; mu
}

func newWasmServer(t *testing.T, wasm, wasmExec string) *wasmServer {
	s := &wasmServer{results: make(chan wasmResult, 1), endings: map[string]string{}}
	done := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, "internal/wasmtest/index.html")
	})
	mux.HandleFunc("GET /wasm_exec.js", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, wasmExec)
	})
	mux.HandleFunc("GET /test.wasm", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, wasm)
	})
	mux.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		var res wasmResult
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			res.Lines = []string{"the page posted a result the test cannot decode: " + err.Error()}
		}
		select {
		case s.results <- res:
		default:
		}
	})
	mux.HandleFunc("GET /echo", s.echo)
	// A handshake that is never answered.
	mux.HandleFunc("GET /hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-done:
		}
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(done) })
	return s
}

// echo echoes messages on a connection named by the query, but for the
// commands "close CODE REASON", "drop", "send N" and "bad-text" (see
// internal/wasmtest), and records how it ended.
func (s *wasmServer) echo(w http.ResponseWriter, r *http.Request) {
	s.handlers.Add(1)
	defer s.handlers.Done()
	name := r.URL.Query().Get("name")
	opts := &AcceptOptions{Subprotocols: []string{"echo"}}
	switch name {
	case "keepalive":
		opts.KeepaliveInterval, opts.KeepaliveTimeout = 100*time.Millisecond, 500*time.Millisecond
	case "deflate":
		opts.Compression = CompressionContextTakeover
	}
	c, err := Accept(w, r, opts)
	if err != nil {
		s.end(name, "Accept: "+err.Error())
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		typ, p, err := c.Read(ctx)
		if err != nil {
			s.end(name, "read: "+err.Error())
			return
		}
		if cmd, ok := strings.CutPrefix(string(p), "close "); ok && typ == MessageText {
			code, reason, _ := strings.Cut(cmd, " ")
			n, _ := strconv.Atoi(code)
			s.end(name, fmt.Sprintf("Close: %v", c.Close(StatusCode(n), reason)))
			return
		}
		if typ == MessageText && string(p) == "drop" {
			s.end(name, fmt.Sprintf("CloseNow: %v", c.CloseNow()))
			return
		}
		if typ == MessageText && string(p) == "bad-text" {
			// Write sends text as given: the browser finds it is not UTF-8.
			p = []byte("ok\xff")
		}
		if size, ok := strings.CutPrefix(string(p), "send "); ok && typ == MessageText {
			n, _ := strconv.Atoi(size)
			p, typ = make([]byte, n), MessageBinary
		}
		if err := c.Write(ctx, typ, p); err != nil {
			s.end(name, "write: "+err.Error())
			return
		}
	}
}

func (s *wasmServer) end(name, how string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.endings[name]; ok {
		how = prev + "; and again: " + how
	}
	s.endings[name] = how
}

// ended waits, for at most 10 seconds, for the echo handlers to return,
// and says how each connection ended.
func (s *wasmServer) ended(t *testing.T) map[string]string {
	t.Helper()
	returned := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(returned)
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case <-returned:
	case <-timer.C:
		t.Fatal("echo handlers still running 10 s after the page reported")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endings
}

// headless is a running Chromium.
type headless struct {
	exited chan struct{} // closed once it has exited
	err    error         // Wait's, once exited is closed
}

// startHeadless runs headless Chromium on url with a fresh profile. When
// the test ends, Chromium is told to quit (SIGTERM), and killed if it has
// not within 10 seconds; then its helper processes, which outlive it
// briefly (writing into the profile), are waited for, and killed if they
// have not exited within 10 seconds either.
func startHeadless(t *testing.T, url string) *headless {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromiumPath,
		"--headless",
		"--no-sandbox",
		"--disable-gpu",
		"--no-first-run",
		"--disable-background-networking",
		"--disable-component-update",
		"--disable-sync",
		"--user-data-dir="+t.TempDir(),
		url,
	)
	// A file, not a pipe: no goroutine copies it, and Chromium's helper
	// processes holding it open cannot keep Wait from returning.
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// A process group of its own, which its helpers join.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logFile.Close()
	if err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	h := &headless{exited: make(chan struct{})}
	go func() {
		h.err = cmd.Wait()
		close(h.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		select {
		case <-h.exited:
		case <-timer.C:
			t.Errorf("chromium still running 10 s after SIGTERM; killing it")
			cmd.Process.Kill()
			<-h.exited
		}
		group := -cmd.Process.Pid
		deadline := time.Now().Add(10 * time.Second)
		for syscall.Kill(group, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("chromium's helper processes still running 10 s after it exited; killing them")
				syscall.Kill(group, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("chromium output:\n%s", out)
		}
	})
	return h
}
