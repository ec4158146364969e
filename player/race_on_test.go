//go:build race

package player

// raceOn: the race detector slows every memory access several times over;
// the contention test measures the product, so it runs without it.
const raceOn = true
