//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ours "github.com/rfc6455/websocket"
	"github.com/rfc6455/websocket/bench/internal/proc"
)

// TestMain lets the test binary be the server processes that the tests
// start, as wsbench is its own servers.
func TestMain(m *testing.M) {
	switch lib := os.Getenv(envServe); lib {
	case "":
		os.Exit(m.Run())
	case "mute":
		exitOn(serveMute())
	default:
		exitOn(serve(lib))
	}
}

// serveMute is a server that completes handshakes, then reads and never
// answers: a server that stopped echoing.
func serveMute() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr())
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := ours.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			if _, _, err := c.Read(r.Context()); err != nil {
				return
			}
		}
	}))
}

// TestRun runs a short wsbench against every library of a default run,
// without pinning, and checks that every run measured something, that
// each scenario ran against the libraries it should, and that the report
// shows it.
func TestRun(t *testing.T) {
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "results.json")
	var out, log bytes.Buffer
	// A stall time well past the default 2 s: under -race, beside the
	// other packages' tests, coder's server took no connection in 2 s.
	args := []string{"-pin=false", "-write=false", "-duration", "100ms", "-rounds", "1", "-stall", "15s",
		"-scenarios", "16B-1x64,1M-1x2,deflate-1K,takeover-16K,rtt,handshake,idle", "-idle", "50", "-settle", "50ms", "-json", jsonPath}
	if err := run(args, &out, &log, false); err != nil {
		t.Fatalf("run: %v\n%s", err, log.String())
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var results []result
	if err := json.Unmarshal(b, &results); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]bool)
	for _, r := range results {
		seen[r.Scenario+" "+r.Lib] = true
		switch r.Scenario {
		case "idle50":
			if r.Conns != 50 {
				t.Errorf("%s %s: %d idle connections, want 50", r.Scenario, r.Lib, r.Conns)
			}
			continue
		case "rtt":
			if !(r.P50 > 0 && r.P50 <= r.P99 && r.P99 <= r.P999) {
				t.Errorf("%s %s: percentiles p50 %v, p99 %v, p99.9 %v out of order", r.Scenario, r.Lib, r.P50, r.P99, r.P999)
			}
		case "deflate-1K", "takeover-16K":
			// Compressed, and less than the payload.
			if r.EchoWirePerMsg <= 0 || r.EchoWirePerMsg >= r.PayloadPerMsg || r.SentWirePerMsg >= r.PayloadPerMsg {
				t.Errorf("%s %s: echoes of %v bytes and messages of %v bytes on the wire per %v-byte payload, want fewer", r.Scenario, r.Lib, r.EchoWirePerMsg, r.SentWirePerMsg, r.PayloadPerMsg)
			}
			if !strings.HasPrefix(r.Extensions, "permessage-deflate") {
				t.Errorf("%s %s: negotiated %q", r.Scenario, r.Lib, r.Extensions)
			}
		case "handshake":
			// Each side allocates something per handshake.
			if r.ServerAllocs < float64(r.Messages) || r.ServerAllocBytes <= 0 || r.ClientAllocs < float64(r.Messages) || r.ClientAllocBytes <= 0 {
				t.Errorf("%s %s: %d handshakes, server %v allocations of %v bytes, client %v of %v", r.Scenario, r.Lib, r.Messages, r.ServerAllocs, r.ServerAllocBytes, r.ClientAllocs, r.ClientAllocBytes)
			}
		}
		if r.Messages <= 0 || r.Seconds <= 0 {
			t.Errorf("%s %s: %d messages in %v s", r.Scenario, r.Lib, r.Messages, r.Seconds)
		}
	}
	want := map[string][]string{
		"16B-1x64":     {"ours", "ours-loop", "ours-read", "gorilla", "coder", "gobwas", "gws", "nbio"},
		"1M-1x2":       {"ours", "ours-loop", "ours-read", "gorilla", "coder", "gobwas", "gws", "nbio"},
		"rtt":          {"ours", "ours-loop", "ours-read", "gorilla", "coder", "gobwas", "gws", "nbio"},
		"idle50":       {"ours", "ours-loop", "ours-read", "gorilla", "coder", "gobwas", "gws", "nbio"},
		"deflate-1K":   {"ours", "ours-loop", "ours-read", "gorilla", "coder", "gws", "nbio"},
		"takeover-16K": {"ours", "ours-loop", "ours-read", "coder", "gws"},
		"handshake":    {"ours", "ours-loop", "ours-read", "gorilla", "coder"},
	}
	n := 0
	for sc, libs := range want {
		for _, lib := range libs {
			if !seen[sc+" "+lib] {
				t.Errorf("no result for %s against %s", sc, lib)
			}
			n++
		}
	}
	if len(results) != n {
		t.Errorf("%d results, want %d", len(results), n)
	}
	for _, want := range []string{
		"### Throughput", "| 16 B, 1 conn, 64 in flight |", "### Round-trip latency", "| p99 |",
		"| 50 idle conns, RSS per conn |", "best peer | ours vs best | ours-loop vs best | ours-read vs best |",
		"### Compression", "| deflate takeover, 16 KiB JSON, 100 conns × 2 |", "offered `permessage-deflate; server_no_context_takeover; client_no_context_takeover`",
		"### Opening handshake", "| client allocs per handshake |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if n := proc.Running(); n != 0 {
		t.Errorf("%d server processes left running", n)
	}
}

// TestStall shows that a server that stops echoing fails the run, within
// the stall time, and is ended.
func TestStall(t *testing.T) {
	cfg, err := parseFlags([]string{"-pin=false", "-write=false", "-duration", "10s", "-stall", "300ms"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := &bench{cfg: cfg, self: self, tick: clockTick(), log: os.Stderr}
	_, err = b.runOne(loadScenarios[0], "mute", 1)
	if err == nil || !strings.Contains(err.Error(), "STALLED: no echo for 300ms") {
		t.Errorf("runOne against a mute server: %v, want a stall", err)
	}
	if n := proc.Running(); n != 0 {
		t.Errorf("%d server processes left running", n)
	}
}

func TestPickScenarios(t *testing.T) {
	names := func(scs []scenario) string {
		var n []string
		for _, sc := range scs {
			n = append(n, sc.Name)
		}
		return strings.Join(n, ",")
	}
	tests := []struct{ flag, want, err string }{
		{"", "16B-1x64,16B-100x8,1K-100x8,16K-1x16,16K-100x2,1M-1x2,1M-100x1,deflate-1K,deflate-16K,takeover-1K,takeover-16K,rtt,handshake,idle10000,idle50000", ""},
		{"rtt,16B-1x64", "16B-1x64,rtt", ""},
		{"idle", "idle10000,idle50000", ""},
		{"idle50000", "idle50000", ""},
		{"bogus", "", `unknown scenario "bogus"`},
	}
	for _, tt := range tests {
		got, err := pickScenarios(tt.flag, []int{10000, 50000})
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("pickScenarios(%q): %v, want error %q", tt.flag, err, tt.err)
			}
			continue
		}
		if err != nil || names(got) != tt.want {
			t.Errorf("pickScenarios(%q) = %s, %v; want %s", tt.flag, names(got), err, tt.want)
		}
	}
}

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{4, 1, 3, 2}, 2.5}}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestFactor checks the best peer and the ratios, for measures where
// higher is better and where lower is.
func TestFactor(t *testing.T) {
	r := &report{ours: []string{"ours"}, peers: []string{"gorilla", "gws", "coder"}}
	tput := row{higher: true, vals: map[string]float64{"ours": 150, "gorilla": 100, "gws": 120, "coder": 0}}
	cost := row{higher: false, vals: map[string]float64{"ours": 5, "gorilla": 7.5, "gws": 10}}
	if b, _ := r.best(tput); b != "gws" {
		t.Errorf("best for throughput = %s, want gws", b)
	}
	if b, _ := r.best(cost); b != "gorilla" {
		t.Errorf("best for a cost = %s, want gorilla", b)
	}
	if f := r.factor(tput, "ours"); f != 1.25 {
		t.Errorf("throughput factor = %v, want 1.25", f)
	}
	if f := r.factor(cost, "ours"); f != 1.5 {
		t.Errorf("cost factor = %v, want 1.5", f)
	}
	if f := r.factor(row{vals: map[string]float64{"ours": 1}}, "ours"); !math.IsNaN(f) {
		t.Errorf("factor without peers = %v, want NaN", f)
	}
}

// TestReadme checks that the results replace only the marked part of the
// README, and that the chart is well-formed XML.
func TestReadme(t *testing.T) {
	cfg := config{libs: []string{"ours", "gws"}, scenarios: []scenario{loadScenarios[0]}, rounds: 1, duration: time.Second,
		args: []string{"-duration", "1s", "-json", "/tmp/x.json", "-profile=/tmp/p", "-libs", "ours,gws"}}
	rep := newReport(cfg, []result{
		{Scenario: "16B-1x64", Lib: "ours", Round: 1, Seconds: 1, Messages: 200000, MsgPerSec: 200000, ServerCPU: 0.5, CPUPerMsg: 2.5e-6},
		{Scenario: "16B-1x64", Lib: "gws", Round: 1, Seconds: 1, Messages: 100000, MsgPerSec: 100000, ServerCPU: 0.5, CPUPerMsg: 5e-6},
	}, time.Minute)
	path := filepath.Join(t.TempDir(), "README.md")
	before, after := "# Title\n\nHand-written.\n\n", "\n## Afterwards\n"
	if err := os.WriteFile(path, []byte(before+beginMark+"\nold results\n"+endMark+"\n"+after), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := rep.writeReadme(path); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if !strings.HasPrefix(text, before+beginMark) || !strings.HasSuffix(text, endMark+"\n"+after) || strings.Contains(text, "old results") {
		t.Errorf("README not rewritten between the marks only:\n%s", text)
	}
	for _, want := range []string{"`go run ./cmd/wsbench -duration 1s -libs ours,gws`", "| 16 B, 1 conn, 64 in flight | 200k msg/s | 100k msg/s | gws | 2.00× |", "| 16 B, 1 conn, 64 in flight | 2.5 µs | 5 µs | gws | 2.00× |"} {
		if !strings.Contains(text, want) {
			t.Errorf("README lacks %q:\n%s", want, text)
		}
	}
	svg, err := os.ReadFile(filepath.Join(filepath.Dir(path), chartFile))
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(svg))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Errorf("chart is not well-formed: %v", err)
			}
			break
		}
	}
	if !bytes.Contains(svg, []byte(">2.00×</text>")) {
		t.Errorf("chart lacks the 2.00× bar:\n%s", svg)
	}
}

// TestHold keeps idle connections to our servers with a short keepalive
// and checks that every connection answered pings while the server's CPU
// was measured, then that keepalive off sends none.
func TestHold(t *testing.T) {
	const conns, hold = 20, time.Second
	for _, keepalive := range []string{"300ms/300ms", "off"} {
		path := filepath.Join(t.TempDir(), "results.json")
		args := []string{"-pin=false", "-write=false", "-rounds", "1", "-libs", "ours,ours-loop", "-scenarios", "idle",
			"-idle", fmt.Sprint(conns), "-settle", "50ms", "-hold", hold.String(), "-keepalive", keepalive, "-json", path}
		var out, log bytes.Buffer
		if err := run(args, &out, &log, false); err != nil {
			t.Fatalf("keepalive %s: run: %v\n%s", keepalive, err, log.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var results []result
		if err := json.Unmarshal(b, &results); err != nil {
			t.Fatal(err)
		}
		if len(results) != 2 {
			t.Fatalf("keepalive %s: %d results, want 2", keepalive, len(results))
		}
		for _, r := range results {
			if r.HoldSeconds < hold.Seconds() || r.HoldCPU < 0 || r.HoldRSSPerConn <= 0 {
				t.Errorf("keepalive %s, %s: held %v s with %v s of CPU, then %v bytes per connection; want at least %v, and memory", keepalive, r.Lib, r.HoldSeconds, r.HoldCPU, r.HoldRSSPerConn, hold)
			}
			// Each connection pings once an interval after its echo, and
			// again an interval after each pong: several times in the hold.
			if keepalive == "off" && r.Pings != 0 {
				t.Errorf("keepalive off, %s: %d pings answered, want none", r.Lib, r.Pings)
			}
			if keepalive != "off" && r.Pings < conns {
				t.Errorf("keepalive %s, %s: %d pings answered, want at least one per connection (%d)", keepalive, r.Lib, r.Pings, conns)
			}
		}
		if !strings.Contains(out.String(), "| 20 idle conns, pings answered per conn per minute |") {
			t.Errorf("keepalive %s: report lacks the pings row:\n%s", keepalive, out.String())
		}
	}
}
