#!/bin/sh
# make bench: every speed, memory and recovery figure moh is held to.
set -eu
cd "$(dirname "$0")/.."
section() { printf '\n== %s\n' "$*"; }
gobench() { # package pattern [benchtime]
	go test "$1" -run '^$' -bench "$2" -benchtime "${3:-1x}" -count 1 | grep -E '^(Benchmark|ok|FAIL)' || true
}

section "playback cost: mohd direct vs MPD on the same file (target: CPU <= MPD, RSS <= 20 MB)"
./scripts/bench-playback.sh "${BENCH_SECONDS:-60}"

section "direct decoding speed (x real time)"
gobench ./player/ 'DecodeGapless|DirectPlayback' 20x

section "file sink pacing (target: 10 s of audio in 10 s +/- 2 %)"
gobench ./player/ 'FileSinkPacing'

section "mohctl status over 1,000 boxes (target <= 5 s)"
gobench ./cmd/mohctl/ 'Status1000' 5x

section "1,000 simulated agents on one mosquitto"
gobench ./fleet/ 'Fleet1000' 3x

section "watchdog: recovery time per fault class (target: detected <= 3 s, audio back <= 5 s)"
gobench ./player/ 'Recovery' 3x

section "library ingest throughput and the EBU R128 meter"
gobench ./uploads/ '.' 2x

section "web API: /api/v1/status p99 with 200 concurrent clients while playing (target <= 20 ms, 0 underruns)"
go test ./webui -run '^$' -bench 'Status200|PlaybackBaseline' -benchtime 20000x -count 1 | grep -E '^(Benchmark|ok|FAIL)' || true
