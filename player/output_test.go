package player

import (
	"context"
	"strings"
	"testing"
)

func TestParseOutput(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want Output
		str  string
	}{
		{"alsa", Output{Kind: "alsa"}, "alsa"},
		{"alsa:hw:1,0", Output{Kind: "alsa", Device: "hw:1,0"}, "alsa:hw:1,0"},
		{"alsa:plughw:CARD=Device", Output{Kind: "alsa", Device: "plughw:CARD=Device"}, "alsa:plughw:CARD=Device"},
		{"alsa:plughw:CARD=Device,DEV=0", Output{Kind: "alsa", Device: "plughw:CARD=Device,DEV=0"}, "alsa:plughw:CARD=Device,DEV=0"},
		{"file:/run/moh/pcm.fifo", Output{Kind: "file", Path: "/run/moh/pcm.fifo"}, "file:/run/moh/pcm.fifo"},
		{"file:/tmp/a:b.raw", Output{Kind: "file", Path: "/tmp/a:b.raw"}, "file:/tmp/a:b.raw"},
		{"file:out.raw", Output{Kind: "file", Path: "out.raw"}, "file:out.raw"},
		{"null", Output{Kind: "null"}, "null"},
		{"  null\n", Output{Kind: "null"}, "null"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParseOutput(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("ParseOutput = %+v, want %+v", got, tc.want)
			}
			if got.String() != tc.str {
				t.Fatalf("String = %q, want %q", got.String(), tc.str)
			}
			again, err := ParseOutput(got.String())
			if err != nil || again != got {
				t.Fatalf("round trip = %+v, %v", again, err)
			}
		})
	}
}

func TestParseOutputErrors(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", `output: empty spec; want "alsa", "alsa:DEVICE", "file:PATH" or "null"`},
		{"   ", "empty spec"},
		{"pulse", `output "pulse": unknown kind "pulse"; want "alsa", "alsa:DEVICE", "file:PATH" or "null"`},
		{"ALSA", `unknown kind "ALSA"`},
		{"alsa:", `output "alsa:": empty ALSA device after "alsa:"; use "alsa" for the default device`},
		{"alsa:hw 1", `output "alsa:hw 1": ALSA device "hw 1" contains a space or control character`},
		{"alsa:-Dnull", `must not start with '-'`},
		{"file:", `output "file:": "file:" needs a path`},
		{"file", `"file:" needs a path`},
		{"file:/a\x00b", "NUL byte"},
		{"null:x", `output "null:x": null takes no argument`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			_, err := ParseOutput(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestOpenSinkKinds(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSink(ctx, Output{Kind: OutputNull}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*NullSink); !ok {
		t.Errorf("null output opened %T", s)
	}
	s.Close()

	if _, err := OpenSink(ctx, Output{Kind: "pulse"}, nil); err == nil || !strings.Contains(err.Error(), `unknown output kind "pulse"`) {
		t.Fatalf("unknown kind: err = %v", err)
	}
	if _, err := OpenSink(ctx, Output{Kind: OutputALSA, Device: "-x"}, nil); err == nil {
		t.Fatal("OpenSink accepted a device starting with '-'")
	}
}
