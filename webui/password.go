package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/mohproject/moh/internal/atomicfile"
	"github.com/mohproject/moh/internal/datadir"
)

// PasswordFile is the name, inside the data dir, of the admin password's
// argon2id hash. Its absence means "not set up yet": there is no default.
const PasswordFile = "admin-password"

// Password length limits. The upper bound keeps a hostile login form from
// making argon2 hash megabytes.
const (
	MinPasswordLen = 8
	maxPasswordLen = 1024
)

// argon2id parameters: the OWASP minimum (19 MiB, 2 passes), small enough
// for a little ARM box yet costly for an offline guesser.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	argonSaltLen = 16
)

// ErrNoPassword means no admin password has been set yet.
var ErrNoPassword = errors.New("no admin password set")

// CheckPasswordPolicy says why pw is not acceptable, or nil.
func CheckPasswordPolicy(pw string) error {
	if !utf8.ValidString(pw) {
		return errors.New("password is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen {
		return fmt.Errorf("password too short: at least %d characters", MinPasswordLen)
	}
	if len(pw) > maxPasswordLen {
		return fmt.Errorf("password too long: at most %d bytes", maxPasswordLen)
	}
	return nil
}

// passwordLock is the lock file every write of PasswordFile holds.
const passwordLock = ".password.lock"

// SetPassword stores the admin password's hash in dataDir, replacing any
// previous one atomically. `mohd passwd` and the first-run setup page use it,
// in two processes, so the write holds the password's lock file, as token
// writes hold theirs. Run as root (sudo), the new file and the lock file get
// the data dir's owner before anyone can see them.
func SetPassword(dataDir, pw string) error {
	if err := CheckPasswordPolicy(pw); err != nil {
		return err
	}
	h, err := hashPassword(pw) // costly: outside the lock
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return datadir.WithFileLock(dataDir, passwordLock, func() error {
		if err := atomicfile.WriteFile(filepath.Join(dataDir, PasswordFile), []byte(h+"\n"), 0o600); err != nil {
			return fmt.Errorf("store password: %w", err)
		}
		return nil
	})
}

// PasswordSet reports whether an admin password exists in dataDir.
func PasswordSet(dataDir string) (bool, error) {
	_, err := os.Stat(filepath.Join(dataDir, PasswordFile))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return false, fmt.Errorf("check password file: %w", err)
}

func hashPassword(pw string) (string, error) {
	salt := make([]byte, argonSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, argonMemory, argonTime, argonThreads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// verifyPassword checks pw against an encoded argon2id hash, using the
// parameters stored in the hash so they can be raised later without
// locking anyone out.
func verifyPassword(encoded, pw string) (bool, error) {
	if len(pw) > maxPasswordLen {
		return false, nil
	}
	parts := strings.Split(strings.TrimSpace(encoded), "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("password file: not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("password file: unsupported argon2 version %q", parts[2])
	}
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false, fmt.Errorf("password file: bad parameters: %w", err)
	}
	if m == 0 || m > 1<<21 || t == 0 || t > 16 || p == 0 {
		return false, fmt.Errorf("password file: parameters out of range (%s)", parts[3])
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("password file: salt: %w", err)
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, fmt.Errorf("password file: bad hash")
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
