package main

import (
	"log/slog"
	"path/filepath"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/player"
)

// newPCMCache is the direct backend's decoded-track cache under the data
// dir (derived data: deleting the directory only costs one decode per
// track). Temp files a power cut left mid-build are removed here, once at
// start, since the cache's own sweep only knows finished files.
func newPCMCache(c *config, log *slog.Logger) *player.PCMCache {
	budget := c.PCMCacheMB << 20
	if c.PCMCacheMB < 0 {
		budget = -1
	}
	dir := filepath.Join(c.Data, "pcm-cache")
	if n, err := atomicfile.CleanTemps(dir); err == nil && n > 0 {
		log.Info("removed unfinished PCM cache files", "files", n)
	}
	return player.NewPCMCache(player.PCMCacheOptions{Logger: log, Dir: dir, Budget: budget})
}
