//go:build race

package phone

// raceOn: the race detector slows every memory access several times over,
// so timing bounds are looser under it (see TestConverterPacing).
const raceOn = true
