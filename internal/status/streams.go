package status

// Streams is the HTTP streams' part of the status document
// (GET /api/v1/stream/{mp3|ulaw|alaw|slin}): who listens now and how many
// listeners were cut off for reading too slowly.
type Streams struct {
	// Listeners counts the open streams by format: mp3, ulaw, alaw, slin.
	Listeners map[string]int `json:"listeners"`
	// MaxListeners is the box's cap over all formats; above it a new
	// listener gets 503 with Retry-After.
	MaxListeners int `json:"max_listeners"`
	// Dropped counts, by format, listeners disconnected since mohd
	// started because they fell behind (queue full or a write stalled
	// past the deadline): a PBX that stops reading must not slow the
	// others.
	Dropped map[string]uint64 `json:"dropped"`
	// MP3Encoder is "running" while the shared lame process encodes for
	// MP3 listeners, "stopped" while nobody listens to MP3.
	MP3Encoder string `json:"mp3_encoder"`
}
