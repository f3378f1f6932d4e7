//go:build !race

package websocket_test

// raceEnabled: see hostile_race_test.go.
const raceEnabled = false
