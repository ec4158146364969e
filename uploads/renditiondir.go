package uploads

// RenditionDir is the folder holding every track's rendition: an MPD that
// plays the library uses it as its music_directory.
func (l *Library) RenditionDir() string { return l.rendDir }
