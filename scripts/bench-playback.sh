#!/bin/sh
# Playback cost, side by side in the same run: mohd (direct backend, paced
# null output) and MPD 0.23 (null output) play the same 12 s house-format
# loop at the same time, so both see the same machine load. Prints CPU of
# each over the same window, their ratio, peak RSS, and a per-second CPU
# profile over 3 loops (loop points every 12 s) that shows whether a loop
# point or track change costs a burst.
# Usage: scripts/bench-playback.sh [seconds]   (default 60)
# MOHD_BIN=path measures another mohd build (e.g. an older commit's).
set -eu
secs=${1:-60}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
# The daemons by PID: in a non-interactive sh `jobs -p` listed nothing, so
# a run left mohd and MPD playing (and loading the box) after it ended.
pid= mpid=
trap 'kill $pid $mpid 2>/dev/null || true; rm -rf "$tmp"' EXIT
mohd=${MOHD_BIN:-}
if [ -z "$mohd" ]; then
	CGO_ENABLED=0 go build -o "$tmp/mohd" ./cmd/mohd
	mohd=$tmp/mohd
fi
command -v socat >/dev/null || { echo "bench-playback needs socat (apt-get install socat)"; exit 1; }

# cpu_ns PID: CPU time of every thread of the process in ns (schedstat is
# exact; /proc/PID/stat counts 10 ms ticks, too coarse for one second of a
# process that needs a few ms of it). Printed with %.0f: mawk's %d stops
# at 2^31-1, so once a process had used 2.15 s of CPU every later reading
# was the same and it seemed to stop using CPU (about 75 s into a run).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'; }
hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
alive() { # pid name: a process that exited (or is a zombie) makes every figure after it meaningless
	st=$(awk '/^State/ {print $2}' "/proc/$1/status" 2>/dev/null || echo gone)
	case $st in Z | gone) echo "$2 exited during the run; its log:"; tail -20 "$3"; exit 1 ;; esac
}

"$mohd" run --data "$tmp/data" --listen 127.0.0.1:0 --backend direct --output null 2>"$tmp/mohd.log" &
pid=$!

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
mpc "update"; sleep 1; mpc "add loop.mp3"; mpc "repeat 1"; mpc "play"

# Start-up is not steady playback: mohd decodes the first pass live while
# it writes the track's PCM cache file, and plays the cache from the
# second pass on.
sleep 15

m0=$(cpu_ns $pid); p0=$(cpu_ns $mpid)
sleep "$secs"
m1=$(cpu_ns $pid); p1=$(cpu_ns $mpid)
alive $pid mohd "$tmp/mohd.log"; alive $mpid mpd "$tmp/mpd.log"
awk -v s="$secs" -v m="$((m1 - m0))" -v p="$((p1 - p0))" -v mh="$(hwm_kb $pid)" -v mr="$(rss_kb $pid)" -v ph="$(hwm_kb $mpid)" 'BEGIN {
	printf "%-28s CPU %.3f s per minute of audio = %.2f %% of one core; peak RSS %.1f MB, now %.1f MB\n", "mohd direct (null output)", m / 1e9 * 60 / s, 100 * m / 1e9 / s, mh / 1024, mr / 1024
	printf "%-28s CPU %.3f s per minute of audio = %.2f %% of one core; peak RSS %.1f MB\n", "mpd 0.23 (null output)", p / 1e9 * 60 / s, 100 * p / 1e9 / s, ph / 1024
	printf "CPU ratio mohd/MPD, same %d s window: %.2f (target <= 1.0)\n", s, (p > 0 ? m / p : 0) }'

echo "per-second CPU over 3 loops (36 s; loop points every 12 s), ms of CPU per second of audio:"
prof=$tmp/prof
prev_m=$(cpu_ns $pid); prev_p=$(cpu_ns $mpid)
for i in $(seq 36); do
	sleep 1
	cm=$(cpu_ns $pid); cp=$(cpu_ns $mpid)
	echo "$i $((cm - prev_m)) $((cp - prev_p))" >>"$prof"
	prev_m=$cm; prev_p=$cp
done
alive $pid mohd "$tmp/mohd.log"; alive $mpid mpd "$tmp/mpd.log"
awk '{ printf "  s%02d mohd %6.2f ms  mpd %6.2f ms\n", $1, $2 / 1e6, $3 / 1e6; m[NR] = $2; p[NR] = $3 }
END {
	n = NR; mx = 0; px = 0; ms = 0; ps = 0
	for (i = 1; i <= n; i++) { ms += m[i]; ps += p[i]; if (m[i] > mx) mx = m[i]; if (p[i] > px) px = p[i] }
	printf "  mohd: mean %.2f ms, max %.2f ms, max/mean %.2f   mpd: mean %.2f ms, max %.2f ms, max/mean %.2f\n", ms / n / 1e6, mx / 1e6, mx * n / ms, ps / n / 1e6, px / 1e6, px * n / ps }' "$prof"
