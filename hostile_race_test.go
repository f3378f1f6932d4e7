//go:build race

package websocket_test

// raceEnabled: the race detector is on, and sync.Pool drops a random share
// of what it is given.
const raceEnabled = true
