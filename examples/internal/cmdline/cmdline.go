// Package cmdline parses the example servers' command lines, which take
// flags only.
package cmdline

import (
	"flag"
	"fmt"
)

// Parse parses args with fs. An argument that is not a flag is an error,
// which it writes with the usage to fs's output: flag stops at the first
// such argument and would leave the flags after it unread, so that
// `server 127.0.0.1:9000 -addr ...` would serve on the default address
// with the rest of its flags ignored.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q: flags only (an address goes after -addr)", fs.Arg(0))
		fmt.Fprintln(fs.Output(), err)
		fs.Usage()
		return err
	}
	return nil
}
