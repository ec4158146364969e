package webui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// credentials caches the password hash and token hashes from the data dir
// and reloads them when the files change, so `mohd passwd` and `mohd token
// create|revoke` take effect in a running daemon without a restart. A stat
// per check is cheap; re-reading on every request would not be.
type credentials struct {
	dir string

	mu      sync.Mutex
	pwStamp fileStamp
	pwHash  string
	tokens  atomic.Pointer[tokenSet]
}

// fileStamp identifies one version of a file. The inode is part of it
// because every atomic write renames a new inode into place, even when
// size and mtime happen to match.
type fileStamp struct {
	exists bool
	mod    time.Time
	size   int64
	ino    uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return fileStamp{}, nil
	}
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{exists: true, mod: fi.ModTime(), size: fi.Size()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

func newCredentials(dir string) *credentials {
	return &credentials{dir: dir, pwStamp: fileStamp{size: -1}}
}

// passwordHash returns the current hash, or ErrNoPassword.
func (c *credentials) passwordHash() (string, error) {
	path := filepath.Join(c.dir, PasswordFile)
	st, err := stampOf(path)
	if err != nil {
		return "", fmt.Errorf("stat password: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st != c.pwStamp {
		c.pwHash = ""
		if st.exists {
			b, err := os.ReadFile(path)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			c.pwHash = string(b)
		}
		c.pwStamp = st
	}
	if c.pwHash == "" {
		return "", ErrNoPassword
	}
	return c.pwHash, nil
}

// checkPassword reports whether pw is the admin password.
func (c *credentials) checkPassword(pw string) (bool, error) {
	h, err := c.passwordHash()
	if err != nil {
		return false, err
	}
	return verifyPassword(h, pw)
}

// tokenSet is one loaded version of the token file.
type tokenSet struct {
	stamp  fileStamp
	byHash map[string]TokenInfo // sha256 hex → info
}

// token looks a bearer token up by its hash. The loaded set is shared
// through an atomic pointer: every API request checks a token, and they
// must not queue behind one another on a lock.
func (c *credentials) token(tok string) (TokenInfo, bool, error) {
	st, err := stampOf(filepath.Join(c.dir, TokensFile))
	if err != nil {
		return TokenInfo{}, false, fmt.Errorf("stat tokens: %w", err)
	}
	set := c.tokens.Load()
	if set == nil || set.stamp != st {
		if set, err = c.reloadTokens(st); err != nil {
			return TokenInfo{}, false, err
		}
	}
	// The lookup is keyed by the SHA-256 of a 256-bit secret, so its
	// timing tells a guesser nothing about the token.
	info, ok := set.byHash[hashToken(tok)]
	return info, ok, nil
}

func (c *credentials) reloadTokens(st fileStamp) (*tokenSet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if set := c.tokens.Load(); set != nil && set.stamp == st {
		return set, nil // another request reloaded it meanwhile
	}
	f, err := readTokens(c.dir)
	if err != nil {
		return nil, err
	}
	set := &tokenSet{stamp: st, byHash: make(map[string]TokenInfo, len(f.Tokens))}
	for _, t := range f.Tokens {
		set.byHash[t.SHA256] = t.TokenInfo
	}
	c.tokens.Store(set)
	return set, nil
}

// passwordStamp identifies the current password file, so the server can
// end every session when the password changes under it.
func (c *credentials) passwordStamp() (fileStamp, error) {
	return stampOf(filepath.Join(c.dir, PasswordFile))
}
