//go:build race

package websocket

// raceReadBuffers is how many more read buffers a message read may
// allocate afresh under the race detector, which makes sync.Pool drop a
// random share of what it is given.
const raceReadBuffers = 6
