package phone_test

import (
	"context"
	"testing"
	"time"

	"github.com/mohproject/moh/internal/phone"
	"github.com/mohproject/moh/internal/phone/phonetest"
)

func TestMP3EncoderSharedAndStopped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := phone.NewHub()
	go phonetest.Publish(ctx, hub, phonetest.Sine441)
	e := phone.NewMP3Encoder(hub, phone.MP3Options{})
	if e.Running() {
		t.Fatal("running before any listener")
	}
	a, err := e.Subscribe(30)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Subscribe(30)
	if err != nil {
		t.Fatal(err)
	}
	if e.Starts() != 1 {
		t.Fatalf("%d lame processes for two listeners, want 1", e.Starts())
	}
	// Every chunk is one whole 16 kHz 32 kbit/s frame: 144 bytes.
	for _, s := range []*phone.MP3Sub{a, b} {
		for range 10 {
			select {
			case f := <-s.C():
				if len(f) != 144 || phone.MP3FrameLen(f) != 144 {
					t.Fatalf("chunk of %d bytes, header says %d", len(f), phone.MP3FrameLen(f))
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no MP3 frame in 5 s")
			}
		}
	}
	a.Close()
	if !e.Running() {
		t.Fatal("stopped while a listener remains")
	}
	b.Close()
	b.Close() // twice is fine
	if e.Running() {
		t.Fatal("still running after the last listener")
	}
	// The feed's hub subscription goes with it.
	deadline := time.Now().Add(5 * time.Second)
	for hub.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d hub subscriptions left", hub.Subscribers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A listener that never reads is ended, not waited for.
	c, err := e.Subscribe(2)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	for range c.C() {
	}
	if !c.Dropped() || e.Running() {
		t.Fatalf("slow listener: dropped %v, encoder running %v", c.Dropped(), e.Running())
	}
}

func TestMP3EncoderMissingLame(t *testing.T) {
	e := phone.NewMP3Encoder(phone.NewHub(), phone.MP3Options{Lame: "/nonexistent/lame"})
	if _, err := e.Subscribe(4); err == nil {
		t.Fatal("subscribed without an encoder")
	}
	if e.Running() || e.Failures() != 1 {
		t.Fatalf("running %v, failures %d", e.Running(), e.Failures())
	}
}

func TestMP3FrameLen(t *testing.T) {
	for _, tc := range []struct {
		h    []byte
		want int
	}{
		{[]byte{0xFF, 0xF3, 0x48, 0xC4}, 144}, // MPEG-2 L3 32k 16 kHz
		{[]byte{0xFF, 0xFB, 0x90, 0x64}, 417}, // MPEG-1 L3 128k 44.1 kHz
		{[]byte{0xFF, 0xFB, 0x92, 0x64}, 418}, // padded
		{[]byte{0xFF, 0xFD, 0x90, 0x64}, 0},   // Layer II
		{[]byte{0xFF, 0xFB, 0xF0, 0x64}, 0},   // bad bitrate
		{[]byte{0x49, 0x44, 0x33, 0x04}, 0},   // ID3
	} {
		if got := phone.MP3FrameLen(tc.h); got != tc.want {
			t.Errorf("% x: %d, want %d", tc.h, got, tc.want)
		}
	}
}
