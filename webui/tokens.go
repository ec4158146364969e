package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/datadir"
)

// TokensFile is the name, inside the data dir, of the API token list. It
// holds only SHA-256 hashes of the tokens: a copy of the file does not
// grant access.
const TokensFile = "tokens.json"

// tokenPrefix marks moh tokens so they are recognisable in a leaked config
// or a secret scanner.
const tokenPrefix = "moh_"

// ErrTokenNotFound means no token has the given id.
var ErrTokenNotFound = errors.New("no such token")

// TokenInfo describes an API token; the token itself is never stored.
type TokenInfo struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Scope   Scope     `json:"scope"`
	Created time.Time `json:"created"`
}

type storedToken struct {
	TokenInfo
	SHA256 string `json:"sha256"`
}

type tokenFile struct {
	Tokens []storedToken `json:"tokens"`
}

// CreateToken issues a new API token with scope, stores its hash in
// dataDir and returns the token — the only time it is ever visible.
func CreateToken(dataDir, scope, name string) (string, TokenInfo, error) {
	sc, err := ParseScope(scope)
	if err != nil {
		return "", TokenInfo{}, err
	}
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || len(name) > 100 {
		return "", TokenInfo{}, errors.New("token name must be valid UTF-8, at most 100 bytes")
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", TokenInfo{}, fmt.Errorf("token: %w", err)
	}
	idb := make([]byte, 6)
	if _, err := rand.Read(idb); err != nil {
		return "", TokenInfo{}, fmt.Errorf("token id: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(secret)
	info := TokenInfo{ID: hex.EncodeToString(idb), Name: name, Scope: sc, Created: time.Now().UTC().Truncate(time.Second)}
	err = updateTokens(dataDir, func(f *tokenFile) error {
		f.Tokens = append(f.Tokens, storedToken{TokenInfo: info, SHA256: hashToken(token)})
		return nil
	})
	if err != nil {
		return "", TokenInfo{}, err
	}
	return token, info, nil
}

// ListTokens returns the tokens stored in dataDir, oldest first.
func ListTokens(dataDir string) ([]TokenInfo, error) {
	f, err := readTokens(dataDir)
	if err != nil {
		return nil, err
	}
	out := make([]TokenInfo, 0, len(f.Tokens))
	for _, t := range f.Tokens {
		out = append(out, t.TokenInfo)
	}
	return out, nil
}

// RevokeToken deletes the token with id from dataDir; requests bearing it
// are refused from then on.
func RevokeToken(dataDir, id string) error {
	return updateTokens(dataDir, func(f *tokenFile) error {
		for i, t := range f.Tokens {
			if t.ID == id {
				f.Tokens = append(f.Tokens[:i], f.Tokens[i+1:]...)
				return nil
			}
		}
		return fmt.Errorf("revoke %q: %w", id, ErrTokenNotFound)
	})
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

func readTokens(dataDir string) (tokenFile, error) {
	var f tokenFile
	b, err := os.ReadFile(filepath.Join(dataDir, TokensFile))
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read tokens: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("parse %s: %w", TokensFile, err)
	}
	return f, nil
}

// tokensLock is the lock file, beside TokensFile, that every
// read-modify-write of the token list holds.
const tokensLock = ".tokens.lock"

// updateTokens applies change to the token file under an exclusive file
// lock, because `mohd token create` runs in another process beside the
// daemon, which may be revoking a token from the page at the same moment.
// Run as root (sudo), the lock file and the new token file get the data
// dir's owner before anyone can see them, so the service can still read
// and lock them.
func updateTokens(dataDir string, change func(*tokenFile) error) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return datadir.WithFileLock(dataDir, tokensLock, func() error {
		f, err := readTokens(dataDir)
		if err != nil {
			return err
		}
		if err := change(&f); err != nil {
			return err
		}
		if f.Tokens == nil {
			f.Tokens = []storedToken{}
		}
		if err := atomicfile.WriteJSON(filepath.Join(dataDir, TokensFile), f, 0o600); err != nil {
			return fmt.Errorf("store tokens: %w", err)
		}
		return nil
	})
}
