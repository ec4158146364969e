#!/bin/sh
# Playback cost: CPU per minute and peak RSS of mohd (direct backend, paced
# null output) against MPD 0.23 playing the same file into its null output.
# Usage: scripts/bench-playback.sh [seconds]   (default 60)
set -eu
secs=${1:-60}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/mohd" ./cmd/mohd

clk=$(getconf CLK_TCK)
# cpu_ticks PID: utime+stime of the process (and its reaped children)
cpu_ticks() { awk '{print $14+$15+$16+$17}' "/proc/$1/stat"; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

measure() { # name pid
	sleep 3 # start-up is not steady playback
	t0=$(cpu_ticks "$2")
	sleep "$secs"
	t1=$(cpu_ticks "$2")
	awk -v n="$1" -v d="$((t1 - t0))" -v clk="$clk" -v s="$secs" -v hwm="$(hwm_kb "$2")" 'BEGIN {
		cpu = d / clk; printf "%-28s CPU %.3f s per minute of audio = %.2f %% of one core; peak RSS %.1f MB\n", n, cpu * 60 / s, 100 * cpu / s, hwm / 1024 }'
}

"$tmp/mohd" run --data "$tmp/data" --listen 127.0.0.1:0 --backend direct --output null 2>"$tmp/mohd.log" &
pid=$!
measure "mohd direct (null output)" $pid
kill $pid; wait $pid 2>/dev/null || true

mkdir -p "$tmp/music"
cp player/fallback.mp3 "$tmp/music/loop.mp3"
cat > "$tmp/mpd.conf" <<CONF
music_directory "$tmp/music"
db_file "$tmp/mpd.db"
bind_to_address "$tmp/mpd.sock"
auto_update "no"
zeroconf_enabled "no"
audio_output {
	type "null"
	name "null"
	mixer_type "software"
}
CONF
mpd --no-daemon "$tmp/mpd.conf" 2>"$tmp/mpd.log" &
mpid=$!
for i in $(seq 50); do [ -S "$tmp/mpd.sock" ] && break; sleep 0.1; done
mpc() { printf '%s\nclose\n' "$*" | timeout 5 socat - "UNIX-CONNECT:$tmp/mpd.sock" >/dev/null 2>&1 || true; }
if command -v socat >/dev/null; then
	mpc "update"; sleep 1; mpc "add loop.mp3"; mpc "repeat 1"; mpc "play"
	measure "mpd 0.23 (null output)" $mpid
else
	echo "mpd comparison needs socat (apt-get install socat)"
fi
