// Package signals gives the example programs their way to stop: the
// first SIGINT (Ctrl-C) or SIGTERM asks for a graceful end, a second ends
// the program at once.
package signals

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// Context returns a context that ends at the first SIGINT or SIGTERM. By
// then the signals' default action is back, so that a second one ends the
// program at once, however far its graceful end has gone: a program that
// began it on the context's end, as a peer can see, is sure of that.
func Context() context.Context {
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	context.AfterFunc(sig, func() {
		stop()
		cancel()
	})
	return ctx
}
