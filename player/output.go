package player

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"unicode"
)

// Output names where the direct backend's PCM goes: the --output flag.
type Output struct {
	Kind   string // "alsa", "file" or "null"
	Device string // ALSA device for Kind "alsa"; "" is ALSA's default
	Path   string // file or FIFO for Kind "file"
}

// Output kinds.
const (
	OutputALSA = "alsa"
	OutputFile = "file"
	OutputNull = "null"
)

const outputForms = `"alsa", "alsa:DEVICE", "file:PATH" or "null"`

// ParseOutput parses an --output spec: "alsa", "alsa:DEVICE" (e.g.
// "alsa:hw:1,0", "alsa:plughw:CARD=Device"), "file:PATH" or "null".
func ParseOutput(spec string) (Output, error) {
	s := strings.TrimSpace(spec)
	if s == "" {
		return Output{}, fmt.Errorf("output: empty spec; want %s", outputForms)
	}
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case OutputNull:
		if hasArg {
			return Output{}, fmt.Errorf("output %q: null takes no argument", spec)
		}
		return Output{Kind: OutputNull}, nil
	case OutputALSA:
		if !hasArg {
			return Output{Kind: OutputALSA}, nil
		}
		if arg == "" {
			return Output{}, fmt.Errorf(`output %q: empty ALSA device after "alsa:"; use "alsa" for the default device`, spec)
		}
		if err := checkALSADevice(arg); err != nil {
			return Output{}, fmt.Errorf("output %q: %w", spec, err)
		}
		return Output{Kind: OutputALSA, Device: arg}, nil
	case OutputFile:
		if arg == "" {
			return Output{}, fmt.Errorf(`output %q: "file:" needs a path, e.g. file:/run/moh/pcm.fifo`, spec)
		}
		if strings.ContainsRune(arg, 0) {
			return Output{}, fmt.Errorf("output %q: path contains a NUL byte", spec)
		}
		return Output{Kind: OutputFile, Path: arg}, nil
	}
	return Output{}, fmt.Errorf("output %q: unknown kind %q; want %s", spec, kind, outputForms)
}

// checkALSADevice rejects device names aplay would misread; the name goes
// to aplay as a separate argument, never through a shell.
func checkALSADevice(dev string) error {
	if strings.HasPrefix(dev, "-") {
		return fmt.Errorf("ALSA device %q must not start with '-'", dev)
	}
	for _, r := range dev {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("ALSA device %q contains a space or control character", dev)
		}
	}
	return nil
}

// String returns the spec ParseOutput accepts for o.
func (o Output) String() string {
	switch o.Kind {
	case OutputALSA:
		if o.Device == "" {
			return OutputALSA
		}
		return OutputALSA + ":" + o.Device
	case OutputFile:
		return OutputFile + ":" + o.Path
	}
	return o.Kind
}

// OpenSink opens the sink o names. ctx bounds the opening only (waiting
// for a FIFO reader, checking that aplay started); Close ends the sink.
func OpenSink(ctx context.Context, o Output, log *slog.Logger) (Sink, error) {
	if log == nil {
		log = slog.Default()
	}
	switch o.Kind {
	case OutputNull:
		return NewNullSink(nil), nil
	case OutputFile:
		return OpenFileSink(ctx, o.Path, FileSinkOptions{Logger: log})
	case OutputALSA:
		return OpenALSASink(ctx, o.Device, ALSASinkOptions{Logger: log})
	}
	return nil, fmt.Errorf("open sink: unknown output kind %q; want %s", o.Kind, outputForms)
}
