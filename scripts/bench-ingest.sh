#!/bin/sh
# Ingest out of the way: a 2-hour track dropped into the music folder of a
# playing mohd. Prints the peak RSS of the whole ingest process tree
# (mohd and every tool it runs, summed at each sample), the tools' nice
# values and I/O classes as seen while they run, how long the ingest took,
# and the size of the track's PCM cache file once playback has built it.
# Usage: scripts/bench-ingest.sh [minutes]   (default 120)
set -eu
mins=${1:-120}
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT
CGO_ENABLED=0 go build -o "$tmp/mohd" ./cmd/mohd

# A long MP3 as a site would upload it (mono 22.05 kHz, so making it is
# quick; the ingest still resamples and encodes the full 2 hours in the
# house format).
sox -V1 -n -r 22050 -c 1 -b 16 -t wav - synth "$((mins * 60))" pinknoise gain -10 |
	lame --silent -b 48 - "$tmp/long.mp3"
echo "source: $mins min, $(($(stat -c %s "$tmp/long.mp3") / 1048576)) MiB MP3"

mkdir -p "$tmp/data/library"
"$tmp/mohd" run --data "$tmp/data" --listen 127.0.0.1:0 --backend direct --output null --max-minutes 1440 2>"$tmp/mohd.log" &
pid=$!
sleep 3
start=$(date +%s)
cp "$tmp/long.mp3" "$tmp/data/.long.mp3" && mv "$tmp/data/.long.mp3" "$tmp/data/library/long.mp3"

# tree_kb: RSS of mohd plus all its descendants, in KiB.
tree_kb() {
	ps -eo pid=,ppid=,rss= | awk -v root="$pid" '
		{ parent[$1] = $2; rss[$1] = $3 }
		END { for (p in rss) { q = p; while (q != "" && q != root && q in parent && q != 1) q = parent[q]; if (q == root) sum += rss[p] } print sum + 0 }'
}
peak=0
prios=$tmp/prios
while ! grep -q 'track added\|upload refused' "$tmp/mohd.log"; do
	kill -0 $pid 2>/dev/null || { echo "mohd died:"; tail -20 "$tmp/mohd.log"; exit 1; }
	kb=$(tree_kb)
	[ "$kb" -gt "$peak" ] && peak=$kb
	for c in $(pgrep -P $pid) $(for p in $(pgrep -P $pid); do pgrep -P "$p"; done); do
		printf '%s nice=%s io=%s\n' "$(cat /proc/"$c"/comm 2>/dev/null)" "$(ps -o ni= -p "$c" | tr -d ' ')" "$(ionice -p "$c" 2>/dev/null | cut -d: -f1)" >>"$prios" 2>/dev/null || true
	done
	sleep 0.5
done
took=$(($(date +%s) - start))
grep 'track added\|upload refused' "$tmp/mohd.log" | head -1 | cut -c1-200
printf 'ingest of %d min: %d s; peak RSS of mohd + its tools %.1f MB; mohd alone peak %.1f MB\n' \
	"$mins" "$took" "$(echo "$peak" | awk '{print $1 / 1024}')" "$(awk '/VmHWM/ {print $2 / 1024}' /proc/$pid/status)"
echo "tool priorities seen while running:"
sort "$prios" | uniq -c | grep -v ' nice= ' | sed 's/^/  /' || true
# Playback moves to the new track and caches it in the background,
# throttled to a quarter of a core: some 20 minutes for 2 hours of audio,
# more on a busy machine, so the wait is 30 minutes.
cstart=$(date +%s)
big=""
for i in $(seq 360); do
	big=$(find "$tmp/data/pcm-cache" -name '*.pcm' -size +10M 2>/dev/null | head -1)
	[ -n "$big" ] && break
	sleep 5
done
if [ -n "$big" ]; then
	awk -v b="$(stat -c %s "$big")" -v m="$mins" -v s="$(($(date +%s) - cstart))" 'BEGIN {
		printf "PCM cache file: %.1f MB = %.2f MB per minute of audio, built within %d s of the ingest\n", b / 1e6, b / 1e6 / m, s }'
else
	echo "PCM cache file not built within 30 min"
fi
kill $pid 2>/dev/null || true
