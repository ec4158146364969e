#!/bin/sh
# make bench: every speed, memory and recovery figure moh is held to.
set -eu
cd "$(dirname "$0")/.."
section() { printf '\n== %s\n' "$*"; }
gobench() { # package pattern [benchtime]
	go test "$1" -run '^$' -bench "$2" -benchtime "${3:-1x}" -count 1 | grep -E '^(Benchmark|ok|FAIL)' || true
}

section "playback cost: mohd direct vs MPD side by side on the same file (target: CPU ratio <= 1.0, RSS <= 20 MB, flat per-second CPU)"
./scripts/bench-playback.sh "${BENCH_SECONDS:-60}"

section "playback under contention: 2 busy loops on both cores + an ingest, 10 min, paced null sink at the unit's Nice= (target: 0 underruns, 0 gaps)"
MOH_CONTENTION_SECONDS=${BENCH_CONTENTION_SECONDS:-600} go test ./player/ -run '^TestPlaybackUnderContention$' -count 1 -v -timeout 30m | grep -E 'RESULT|underruns|^(ok|FAIL)' || true

section "ingest out of the way: a 2-hour track (peak RSS of the ingest process tree, tool priorities, PCM cache size)"
./scripts/bench-ingest.sh "${BENCH_INGEST_MINUTES:-120}"

section "direct decoding speed (x real time)"
gobench ./player/ 'DecodeGapless|DirectPlayback' 20x

section "volume and level meter per 100 ms block (the direct backend's own work on every block)"
gobench ./player/ 'BlockLevelGain' 1s

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

section "telephone signal: converter cost per 20 ms frame (0 allocations)"
gobench ./internal/phone/ 'Converter|Resample' 200x

section "RTP multicast in a private network namespace: packet timing (target: p99 <= 5 ms off schedule, 0 sequence gaps)"
MOH_RTP_P99_MS=5 go test ./cmd/mohd/ -run '^TestRTPMulticastInNetns$' -count 1 -v | grep -E 'off schedule|^(--- |ok|FAIL)' || true

section "SIP: 100 callers on hold (target: < 0.05 % of a core per caller; packet lateness p99)"
gobench ./internal/sip/ 'SIPCallers' 10x

section "override to audible over MQTT on 20 boxes (target: <= 2 s)"
gobench ./cmd/mohctl/ 'OverrideAudible20' 5x

section "syslog forwarding: queueing cost with the collector away"
gobench ./internal/logfwd/ 'SendFullRing' 100000x
