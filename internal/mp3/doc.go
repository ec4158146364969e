// Package mp3 reads what moh must know about an MPEG audio file before a
// decoder touches it: the frame header, the ID3v2 tags to skip, the first
// real frame (confirmed by the frames after it, so that a stray sync word in
// a tag or in random bytes is not taken for audio), the Xing/Info, LAME and
// VBRI tags that give the exact length and the encoder delay and padding,
// and a walk over every frame.
//
// It is the one parser for the direct player (which must refuse what go-mp3
// decodes wrongly and trim the LAME delay and padding for gapless loops) and
// for the upload sniffer (which must name a file and notice when it is cut
// short). Where those two need different rules, the rule is a field of
// Search, set by the caller, not a second parser.
//
// Nothing here allocates by a size a file claims: a forged ID3 size is an
// error, and every buffer has a fixed bound (a frame, a 16 KiB scan chunk,
// the walk's 64 KiB read-ahead).
package mp3
