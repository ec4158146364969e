package webui

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode"
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
	MinPasswordLen = 10
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

// CheckPasswordPolicy says why pw is not acceptable, or nil. It refuses
// what a guesser tries first: short passwords, the common ones (password,
// admin, moh… with digits and punctuation around them), runs like 12345,
// the setup code printed in the log, and the box's own names (its host
// name, its fleet id). setupCode and names may be empty.
func CheckPasswordPolicy(pw, setupCode string, names ...string) error {
	if !utf8.ValidString(pw) {
		return errors.New("password is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(pw); n < MinPasswordLen {
		return fmt.Errorf("password too short: at least %d characters", MinPasswordLen)
	}
	if len(pw) > maxPasswordLen {
		return fmt.Errorf("password too long: at most %d bytes", maxPasswordLen)
	}
	distinct := map[rune]bool{}
	for _, r := range strings.ToLower(pw) {
		distinct[r] = true
	}
	if len(distinct) < 4 {
		return errors.New("password too simple: it has fewer than 4 different characters")
	}
	folded := foldPassword(pw)
	if isRun(folded) {
		return errors.New("password too simple: it is a run like 12345 or abcde")
	}
	if code := foldPassword(setupCode); len(code) >= 4 && strings.Contains(folded, code) {
		return errors.New("password contains the setup code, which is printed in the log")
	}
	strip := append([]string(nil), weakPasswordWords...)
	var own []string
	for _, n := range names {
		if f := foldPassword(n); len(f) >= 3 {
			own = append(own, f)
		}
	}
	strip = append(strip, own...)
	// Longest first, so "administrator" goes before "admin" leaves "istrator".
	slices.SortFunc(strip, func(a, b string) int { return len(b) - len(a) })
	// Both spellings: "P@ssw0rd" is "password" to a guesser.
	for _, f := range []string{folded, foldPassword(unLeet(strings.ToLower(pw)))} {
		rest := f
		for _, w := range strip {
			rest = strings.ReplaceAll(rest, w, "")
		}
		rest = strings.Map(func(r rune) rune {
			if unicode.IsDigit(r) {
				return -1
			}
			return r
		}, rest)
		if utf8.RuneCountInString(rest) >= 3 {
			continue
		}
		for _, n := range own {
			if strings.Contains(f, n) {
				return errors.New("password too easy to guess: it is the box's own name with little else")
			}
		}
		return errors.New("password too common: it is only words and digits a guesser tries first (password, admin, moh, 1234…)")
	}
	return nil
}

// weakPasswordWords are the words (lower case, letters and digits only)
// a guesser tries first on an appliance like this one.
var weakPasswordWords = []string{
	"password", "passwort", "motdepasse", "contrasena", "admin", "administrator", "root", "user",
	"letmein", "welcome", "changeme", "default", "secret", "login", "test", "guest", "setup",
	"qwerty", "qwertz", "azerty", "asdf", "abc", "iloveyou", "monkey", "dragon",
	"moh", "music", "musiconhold", "hold", "holdmusic", "onhold",
}

// foldPassword keeps the letters and digits of s, in lower case: spaces,
// dashes and punctuation do not make a common word uncommon.
func foldPassword(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return unicode.ToLower(r)
		}
		return -1
	}, s)
}

// unLeet reads the digits people put for letters as those letters.
func unLeet(s string) string {
	return strings.NewReplacer("0", "o", "1", "i", "3", "e", "4", "a", "5", "s", "7", "t", "@", "a", "$", "s").Replace(s)
}

// isRun reports whether s climbs or falls one character at a time
// (1234567890, abcdefghij, 9876543210).
func isRun(s string) bool {
	r := []rune(s)
	if len(r) < 3 {
		return false
	}
	step := r[1] - r[0]
	if step != 1 && step != -1 {
		return false
	}
	for i := 2; i < len(r); i++ {
		if d := r[i] - r[i-1]; d != step && !(r[i-1] == '9' && r[i] == '0' && step == 1) && !(r[i-1] == '0' && r[i] == '9' && step == -1) {
			return false
		}
	}
	return true
}

// passwordLock is the lock file every write of PasswordFile holds.
const passwordLock = ".password.lock"

// SetPassword stores the admin password's hash in dataDir, replacing any
// previous one atomically. `mohd passwd` and the first-run setup page use it,
// in two processes, so the write holds the password's lock file, as token
// writes hold theirs. Run as root (sudo), the new file and the lock file get
// the data dir's owner before anyone can see them.
func SetPassword(dataDir, pw string) error {
	// The callers who know the setup code and the box's names have
	// checked those already; this is the floor for every caller.
	if err := CheckPasswordPolicy(pw, ""); err != nil {
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
