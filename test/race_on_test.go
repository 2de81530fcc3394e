//go:build race

package test

// raceEnabled is true in builds with the race detector, which runs the
// server several times slower: load-sized tests scale down under it and
// scripts/test.sh runs them again without it.
const raceEnabled = true
