// Package godebugtest runs a test in a child process under a GODEBUG
// setting that the standard library reads only as a program starts, such
// as http2xconnect=1.
package godebugtest

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Has reports whether this process runs with setting in GODEBUG.
func Has(setting string) bool {
	return strings.Contains(os.Getenv("GODEBUG"), setting)
}

// Run runs the test called name, of this test binary, in a child process
// with setting added to GODEBUG. It fails t unless the test passed there,
// and skips t when it was skipped there. Called in the child, it skips t:
// the test itself runs there.
func Run(t *testing.T, setting, name string) {
	t.Helper()
	if Has(setting) {
		t.Skipf("in the child, %s runs", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "GODEBUG="+strings.Trim(os.Getenv("GODEBUG")+","+setting, ","))
	out, err := cmd.CombinedOutput()
	if err == nil && strings.Contains(string(out), "--- SKIP: "+name+" ") {
		t.Skipf("%s was skipped with GODEBUG=%s:\n%s", name, setting, out)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name+" ") {
		t.Fatalf("%s with GODEBUG=%s: %v\n%s", name, setting, err, out)
	}
}
