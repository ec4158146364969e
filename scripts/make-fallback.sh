#!/bin/sh
# make-fallback.sh regenerates player/fallback.mp3, the hold music moh
# plays when the library is empty: a soft 12 s plucked arpeggio over pads
# (C - Am - F - G), low-passed for a phone line, that loops without a seam.
#
# Why it loops seamlessly: the piece is rendered longer than the loop (the
# last notes and the reverb ring on), and that tail is mixed back onto the
# start, so the sample after the last one is exactly the first one. The
# MP3's LAME tag then lets moh's gapless decoder trim the encoder's delay
# and padding, so nothing is inserted at the seam.
#
# Needs sox and lame. Deterministic: sox -R fixes the noise seed.
set -eu
cd "$(dirname "$0")/.."
out=player/fallback.mp3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

rate=44100
step=0.375                  # one arpeggio note: eighths at 80 bpm
loop_samples=529200         # 4 chords x 8 notes x 0.375 s = 12 s at 44.1 kHz
notes="C3 G3 C4 E4 G4 C5 G4 E4
A2 E3 A3 C4 E4 A4 E4 C4
F2 C3 F3 A3 C4 F4 C4 A3
G2 D3 G3 B3 D4 G4 D4 B3"
pads="C3 E3 G3
A2 C3 E3
F2 A2 C3
G2 B2 D3"

sox="sox -R -q"
i=0
n=0
echo "$notes" | while read -r line; do
	for note in $line; do
		start=$(awk "BEGIN{print $i * $step}")
		$sox -n -r $rate -c 1 "$tmp/n$i.wav" synth 2.6 pluck "$note" vol 0.5 fade q 0.005 2.6 1.8 pad "$start"
		i=$((i + 1))
	done
done
echo "$pads" | while read -r line; do
	start=$(awk "BEGIN{print $n * 8 * $step}")
	j=0
	for note in $line; do
		$sox -n -r $rate -c 1 "$tmp/p$n-$j.wav" synth 3.6 sine "$note" vol 0.12 fade h 0.8 3.6 1.0 pad "$start"
		j=$((j + 1))
	done
	n=$((n + 1))
done

# Mix everything, add a little stereo room, let it ring out.
$sox -m "$tmp"/n*.wav "$tmp"/p*.wav "$tmp/mono.wav"
$sox "$tmp/mono.wav" -c 2 "$tmp/full.wav" lowpass 4500 pad 0 3 reverb 40 50 70 100 10 0
# Fold the tail past the loop length back onto the start.
$sox "$tmp/full.wav" "$tmp/head.wav" trim 0 "${loop_samples}s"
$sox "$tmp/full.wav" "$tmp/tail.wav" trim "${loop_samples}s"
$sox -m -v 1 "$tmp/head.wav" -v 1 "$tmp/tail.wav" "$tmp/loop.wav" gain -n -3
got=$(soxi -s "$tmp/loop.wav")
[ "$got" = "$loop_samples" ] || { echo "loop is $got samples, want $loop_samples" >&2; exit 1; }

lame --quiet --noreplaygain -q 2 -b 128 -m j "$tmp/loop.wav" "$tmp/fallback.mp3"
mv "$tmp/fallback.mp3" "$out"
ls -l "$out"
