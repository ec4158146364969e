package uploads

import (
	"log/slog"
	"path/filepath"
	"time"
)

// Options configure a Library. Zero values mean the documented defaults.
type Options struct {
	// DataDir holds the library store (DataDir/tracks: originals,
	// renditions, previews, index.json).
	DataDir string
	// MusicDir is the drop folder: audio files copied there by hand are
	// ingested and moved into the store (default DataDir/library).
	MusicDir string
	// MaxBytes caps the size of one upload (default 200 MiB).
	MaxBytes int64
	// MaxDuration caps the length of one track (default 2 h).
	MaxDuration time.Duration
	// TargetLUFS is the integrated loudness renditions are normalised to
	// (nil means -18 LUFS). NormaliseOff keeps the original level.
	TargetLUFS   *float64
	NormaliseOff bool
	// MaxTruePeak is the ceiling for the normalised rendition (default -1 dBTP).
	MaxTruePeak *float64
	// MinFreeBytes: uploads are refused when less than this would stay free
	// on DataDir's file system, and Disk warns below twice this
	// (default 100 MiB; negative disables the guard).
	MinFreeBytes int64
	// BitrateKbps makes renditions CBR at this rate; 0 (default) encodes
	// VBR -V 2. Both carry a LAME tag with the exact length.
	BitrateKbps int
	// PollInterval is how often MusicDir is scanned (default 1 s) and
	// SettleTime how long a file's size and mtime must stay unchanged
	// before it is ingested (default 2 s), so a copy in progress is not
	// read half-way.
	PollInterval, SettleTime time.Duration
	// ToolTimeout bounds each decoder/encoder run on top of a budget
	// proportional to the audio length (default 60 s); ToolMemoryBytes is
	// their address-space limit (default 512 MiB).
	ToolTimeout     time.Duration
	ToolMemoryBytes int64
	// OnEvent, if set, is told about hand-copied files ingested or refused
	// (kind "ingested" or "refused") so they reach the admin's event log.
	OnEvent func(kind, msg string)

	Logger *slog.Logger
	Now    func() time.Time
	// Statfs reports free and total bytes of the file system holding path
	// (default syscall.Statfs); tests inject a full disk.
	Statfs func(path string) (free, total uint64, err error)
	// DiskCacheTTL is how long Disk reuses one reading (default 2 s;
	// negative: read every time). Health, the status document, /metrics
	// and the fleet link all ask several times a second under load; one
	// reading serves them, so they also agree. A change to the library
	// makes the next call read again.
	DiskCacheTTL time.Duration
	Tools        Tools
}

// Tools are the external programs ingest runs (the list is ingestTools in
// tools.go). Empty fields are looked up in PATH.
type Tools struct {
	MPG123 string // MP3 decoder: conformant for MPEG-1/2/2.5, honours the LAME tag
	Sox    string // WAV/FLAC/Ogg decoder, resampler, gain, phone-band preview
	Lame   string // rendition encoder (writes the LAME tag)
}

const (
	defaultMaxBytes     = 200 << 20
	defaultMaxDuration  = 2 * time.Hour
	defaultTargetLUFS   = -18.0
	defaultMaxTruePeak  = -1.0
	defaultMinFreeBytes = 100 << 20
	minDuration         = time.Second
)

func (o *Options) setDefaults() {
	if o.MusicDir == "" {
		o.MusicDir = filepath.Join(o.DataDir, "library")
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.MaxDuration <= 0 {
		o.MaxDuration = defaultMaxDuration
	}
	if o.TargetLUFS == nil {
		v := defaultTargetLUFS
		o.TargetLUFS = &v
	}
	if o.MaxTruePeak == nil {
		v := defaultMaxTruePeak
		o.MaxTruePeak = &v
	}
	if o.MinFreeBytes == 0 {
		o.MinFreeBytes = defaultMinFreeBytes
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.SettleTime <= 0 {
		o.SettleTime = 2 * time.Second
	}
	if o.ToolTimeout <= 0 {
		o.ToolTimeout = 60 * time.Second
	}
	if o.ToolMemoryBytes <= 0 {
		o.ToolMemoryBytes = 512 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Statfs == nil {
		o.Statfs = statfs
	}
	if o.DiskCacheTTL == 0 {
		o.DiskCacheTTL = 2 * time.Second
	}
	resolveTools(&o.Tools)
}
