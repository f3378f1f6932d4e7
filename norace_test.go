//go:build !race

package websocket

// raceReadBuffers: see race_test.go.
const raceReadBuffers = 0
