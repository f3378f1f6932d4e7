//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary be the server processes that the tests
// start, as compmem is its own servers.
func TestMain(m *testing.M) {
	if spec := os.Getenv(envServe); spec != "" {
		exitOn(serve(spec))
		return
	}
	os.Exit(m.Run())
}

// needPython skips the test if python-websockets cannot run, or fails it
// under WEBSOCKET_REQUIRE_PEERS=1, as CI sets.
func needPython(t *testing.T) {
	t.Helper()
	if err := exec.Command("/usr/bin/python3", "-c", "import websockets").Run(); err != nil {
		if os.Getenv("WEBSOCKET_REQUIRE_PEERS") == "1" {
			t.Fatalf("WEBSOCKET_REQUIRE_PEERS=1 but python3-websockets cannot run: %v", err)
		}
		t.Skipf("python3-websockets cannot run: %v", err)
	}
}

func TestCells(t *testing.T) {
	cfg, err := parseFlags([]string{"-windows", "12,8", "-modes", "takeover,plain"}, new(bytes.Buffer))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cfg.cells() {
		got = append(got, fmt.Sprintf("%v %d/%d %d", c, c.Window, c.clientWindow(), c.configBits()))
	}
	want := []string{
		"ours/takeover/12 12/12 12", "ours/takeover/8 8/9 9", "ours/plain 0/9 9",
		"ours-read/takeover/12 12/12 12", "ours-read/takeover/8 8/9 9", "ours-read/plain 0/9 9",
		"python/takeover/12 12/12 12", "python/plain 0/9 9", // no python at 8: zlib refuses it
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("cells:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, args := range [][]string{
		{"-windows", "7"}, {"-windows", "16"}, {"-servers", "gorilla"}, {"-modes", "zstd"},
		{"-conns", "0"}, {"-quiet", "-1s"}, {"extra"},
	} {
		if _, err := parseFlags(args, new(bytes.Buffer)); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// TestRun measures every server with a few connections and short waits,
// and checks what each run saw: the windows settled as offered (the
// clients check that, and fail the run otherwise), every echo right and
// compressed unless compression was off, and our servers' heap read.
func TestRun(t *testing.T) {
	needPython(t)
	const conns = 20
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "results.json")
	var stdout, stderr bytes.Buffer
	err := run([]string{"-conns", fmt.Sprint(conns), "-runs", "1", "-settle", "100ms", "-quiet", "100ms",
		"-windows", "10,8", "-parallel", "4", "-json", jsonPath, "-heapprofile", dir}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var results []result
	if err := json.Unmarshal(raw, &results); err != nil {
		t.Fatal(err)
	}
	// ours and ours-read: 2 modes × 2 windows + plain; python: 2 modes ×
	// 1 window + plain.
	if len(results) != 13 {
		t.Fatalf("%d results, want 13", len(results))
	}
	for _, r := range results {
		want := 3 * conns
		if r.Mode == modePlain {
			want = 0
		}
		switch {
		case r.Error != "":
			t.Errorf("%v: %s", r.cell, r.Error)
		case r.Echoes != 3*conns || r.Compressed != want:
			t.Errorf("%v: %d echoes, %d compressed; want %d, %d", r.cell, r.Echoes, r.Compressed, 3*conns, want)
		case r.Mode != modePlain && (r.Wire <= 0 || r.Wire >= int64(r.Compressed)*4096/2):
			t.Errorf("%v: %d compressed echoes took %d bytes, not under half their 4 KiB each", r.cell, r.Compressed, r.Wire)
		case r.RSSBefore <= 0 || r.RSSSettled <= 0 || r.RSSQuiet <= 0:
			t.Errorf("%v: VmRSS %d, %d, %d", r.cell, r.RSSBefore, r.RSSSettled, r.RSSQuiet)
		case r.Server != serverPython && (r.HeapAfter <= 0 || r.StackAfter <= 0 || r.RSSFreed <= 0):
			t.Errorf("%v: heap %d, stacks %d, VmRSS after GC %d", r.cell, r.HeapAfter, r.StackAfter, r.RSSFreed)
		}
	}
	// A heap profile of each of our servers' runs, none of python's.
	profiles, _ := filepath.Glob(filepath.Join(dir, "*.pb.gz"))
	if len(profiles) != 10 {
		t.Errorf("heap profiles %q, want one for each of the 10 runs of our servers", profiles)
	}
	for _, p := range profiles {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 || strings.HasPrefix(filepath.Base(p), "python") {
			t.Errorf("heap profile %s: %v", p, err)
		}
	}
	table := stdout.String()
	for _, row := range []string{"| ours | 2^10 | yes |", "| ours | 2^8 / 2^9 | no |", "| ours-read | no compression | – |", "| python | 2^10 | no |"} {
		if !strings.Contains(table, row) {
			t.Errorf("the table has no row %q:\n%s", row, table)
		}
	}
	if strings.Contains(table, "failed") {
		t.Errorf("the table shows a failed cell:\n%s", table)
	}

	// -from makes the same table from the JSON.
	var again bytes.Buffer
	if err := run([]string{"-conns", fmt.Sprint(conns), "-settle", "100ms", "-quiet", "100ms", "-windows", "10,8", "-from", jsonPath}, &again, &stderr); err != nil {
		t.Fatal(err)
	}
	if _, rows, _ := strings.Cut(table, "\n\n"); again.String() != rows {
		t.Errorf("-from printed:\n%s\nwant:\n%s", again.String(), rows)
	}
}
