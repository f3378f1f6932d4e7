package autobahn

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sections is autobahn/run's default CASES_JSON: sections 1 to 10.
const sections = `["1.*","2.*","3.*","4.*","5.*","6.*","7.*","9.*","10.*"]`

// TestRunArguments runs autobahn/run against stand-ins for the
// testsuite's scripts, which write down the arguments they are given and
// pass, and checks that each part of its command line reaches them as its
// usage line has it: [server|client|both] [CASES_JSON] [EXCLUDE_JSON]
// [-- TESTEE_FLAGS...], each optional, the testees' flags after "--"
// whatever came before it.
func TestRunArguments(t *testing.T) {
	suite := standIns(t, `printf '%s\n' "$@" > "$AUTOBAHN_OUT/$(basename "$0").args"`)

	for _, tt := range []struct {
		args           []string
		server, client bool
		cases, exclude string
		flags          []string
	}{
		{nil, true, true, sections, `[]`, nil},
		{[]string{"both", `["12.*","13.*"]`, `[]`, "--", "-compression", "takeover"}, true, true, `["12.*","13.*"]`, `[]`, []string{"-compression", "takeover"}},
		// Fewer than three arguments before "--".
		{[]string{"server", "--", "-compression", "takeover"}, true, false, sections, `[]`, []string{"-compression", "takeover"}},
		{[]string{"client", `["12.*"]`, "--", "-compression", "no-takeover"}, false, true, `["12.*"]`, `[]`, []string{"-compression", "no-takeover"}},
		{[]string{"--", "-compression", "takeover"}, true, true, sections, `[]`, []string{"-compression", "takeover"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			out := t.TempDir()
			stdout, err := run(t, suite, out, "", tt.args...)
			if err != nil {
				t.Fatalf("autobahn/run %q: %v\n%s", tt.args, err, stdout)
			}
			flags := strings.Join(tt.flags, " ")
			if tt.server {
				// test-server OUTDIR URL CASES EXCLUDE; the server's flags
				// show in the line that names the testee.
				got := readArgs(t, out, "test-server")
				if len(got) != 4 || got[2] != tt.cases || got[3] != tt.exclude {
					t.Errorf("test-server got %q, want cases %s and exclusions %s", got, tt.cases, tt.exclude)
				}
				want := "== Autobahn, server role: " + filepath.Join(out, "bin", "server") + " " + flags + " on 127.0.0.1:"
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if tt.client {
				// test-client OUTDIR CASES EXCLUDE -- COMMAND ARGS...
				got := readArgs(t, out, "test-client")
				want := append([]string{filepath.Join(out, "client-role"), tt.cases, tt.exclude, "--", filepath.Join(out, "bin", "client")}, tt.flags...)
				if !slices.Equal(got, want) {
					t.Errorf("test-client got %q, want %q", got, want)
				}
			}
			for role, ran := range map[string]bool{"test-server": tt.server, "test-client": tt.client} {
				if _, err := os.Stat(filepath.Join(out, role+".args")); !ran && err == nil {
					t.Errorf("%s ran, in the wrong role", role)
				}
			}
		})
	}

	// A command line it cannot take is refused with its usage and status 2,
	// not run with a testee flag taken for a JSON list or the reverse.
	for _, args := range [][]string{
		{"servers"},
		{"server", `["1.*"]`, `[]`, "-compression", "takeover"},
		{"both", `["1.*"]`, `[]`, `[]`, "--"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			out := t.TempDir()
			stdout, err := run(t, suite, out, "", args...)
			if code := exitCode(err); code != 2 || !strings.Contains(stdout, "usage: autobahn/run") {
				t.Errorf("autobahn/run %q: exit status %d, want 2 with the usage:\n%s", args, code, stdout)
			}
			for _, role := range []string{"test-server", "test-client"} {
				if _, err := os.Stat(filepath.Join(out, role+".args")); err == nil {
					t.Errorf("%s ran", role)
				}
			}
		})
	}
}

// TestRunNoReports: when the testsuite cannot run and leaves no report,
// autobahn/run fails saying what the testsuite said, without a traceback
// of its own from looking for cases to run again in the missing report.
func TestRunNoReports(t *testing.T) {
	suite := standIns(t, `echo "stand-in: the testsuite cannot start" >&2; exit 2`)
	stdout, err := run(t, suite, t.TempDir(), "", "server")
	if code := exitCode(err); code != 1 || !strings.Contains(stdout, "stand-in: the testsuite cannot start") || strings.Contains(stdout, "Traceback") {
		t.Errorf("exit status %d, want 1 with the testsuite's words and no traceback:\n%s", code, stdout)
	}

	// The same with a wstest command ($WSTEST) that fails at once, whose
	// report autobahn/run checks itself.
	stdout, err = run(t, t.TempDir(), t.TempDir(), "false", "server")
	if code := exitCode(err); code != 1 || !strings.Contains(stdout, "no report: the testsuite did not run") || strings.Contains(stdout, "Traceback") {
		t.Errorf("with WSTEST=false: exit status %d, want 1 saying there is no report, and no traceback:\n%s", code, stdout)
	}
}

// standIns returns a directory holding stand-ins for the testsuite's
// test-server and test-client that run script, or skips the test (fails
// it, with CI=true) where autobahn/run cannot run: it is a bash script,
// and picks its ports with python3.
func standIns(t *testing.T, script string) string {
	t.Helper()
	for _, prog := range []string{"bash", "python3"} {
		if _, err := exec.LookPath(prog); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true but autobahn/run cannot run: %v", err)
			}
			t.Skipf("autobahn/run cannot run (it needs bash and python3): %v", err)
		}
	}
	suite := t.TempDir()
	for _, name := range []string{"test-server", "test-client"} {
		if err := os.WriteFile(filepath.Join(suite, name), []byte("#!/bin/sh\n"+script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return suite
}

// run runs autobahn/run with args, the testsuite's scripts (or
// stand-ins) in suite, or else the wstest command, and its reports in
// out, and returns what it wrote.
func run(t *testing.T, suite, out, wstest string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"run"}, args...)...)
	cmd.Env = append(os.Environ(), "AUTOBAHN_DIR="+suite, "AUTOBAHN_OUT="+out, "WSTEST="+wstest)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

// readArgs returns the arguments the stand-in for name was given.
func readArgs(t *testing.T, out, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, name+".args"))
	if err != nil {
		t.Fatalf("%s did not run: %v", name, err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}
