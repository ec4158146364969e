package uploads

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// BenchmarkIngest3MinMP3 measures the whole ingest of a 3-minute 44.1 kHz
// stereo MP3 (sniff, decode, measure, resample, encode, check, store) and
// reports it as a multiple of real time and seconds per minute of audio.
func BenchmarkIngest3MinMP3(b *testing.B) {
	benchIngest(b, 44100, "-b", "192")
}

// BenchmarkIngest3MinMP3LSF is the same for a 22.05 kHz mono MPEG-2 file,
// which also needs resampling.
func BenchmarkIngest3MinMP3LSF(b *testing.B) {
	benchIngest(b, 22050, "-b", "64", "-m", "m")
}

func benchIngest(b *testing.B, rate int, lameArgs ...string) {
	const secs = 180
	dir := b.TempDir()
	wav := filepath.Join(dir, "in.wav")
	x := pink(rate, 2, secs, -20, 3)
	writeWAV16(b, wav, rate, 2, x)
	mp3 := filepath.Join(dir, "in.mp3")
	run(b, "lame", append(append([]string{"--silent"}, lameArgs...), wav, mp3)...)
	l := testLib(b, func(o *Options) { o.Logger = nil })
	b.ResetTimer()
	var total time.Duration
	cpu0 := cpuTime()
	for range b.N {
		f, _ := os.Open(mp3)
		start := time.Now()
		tr, _, err := l.Ingest(context.Background(), "in.mp3", f, nil)
		total += time.Since(start)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		l.Delete(tr.ID)
		b.StartTimer()
	}
	cpu := (cpuTime() - cpu0).Seconds() / float64(b.N)
	per := total.Seconds() / float64(b.N)
	// CPU seconds (mohd plus its decoders and encoder) do not depend on
	// what else the box is doing; wall time does.
	b.ReportMetric(cpu/(secs/60), "cpu_s/min_audio")
	b.ReportMetric(secs/per, "x_realtime")
	b.ReportMetric(per/(secs/60), "s/min_audio")
}

// cpuTime is the CPU time used by this process and its waited-for children.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	d := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return d(self.Utime) + d(self.Stime) + d(kids.Utime) + d(kids.Stime)
}
