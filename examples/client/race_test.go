//go:build race

package main

// raceEnabled builds the client under test with the race detector too.
const raceEnabled = true
