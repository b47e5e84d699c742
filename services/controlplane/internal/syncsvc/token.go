package syncsvc

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TokenFile is the name of the service token generated in a data directory.
const TokenFile = "sync-token"

// minTokenLen is the shortest token accepted from a file (a generated one has 43
// characters: 32 random bytes, base64url).
const minTokenLen = 16

// LoadOrCreateToken returns the service token kept in dir/TokenFile, creating a
// random one (file mode 0600) on first use; created reports that. It serves the
// embedded default, where one process owns the data directory; several replicas
// must share a configured token instead.
func LoadOrCreateToken(dir string) (token, path string, created bool, err error) {
	path = filepath.Join(dir, TokenFile)
	raw, err := os.ReadFile(path)
	if err == nil {
		token = strings.TrimSpace(string(raw))
		if len(token) < minTokenLen {
			return "", path, false, fmt.Errorf("syncsvc: %s holds a token shorter than %d characters", path, minTokenLen)
		}
		return token, path, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	// O_EXCL: two processes racing on a fresh directory do not overwrite each
	// other's token; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateToken(dir)
	}
	if err != nil {
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		_ = f.Close()
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", path, false, fmt.Errorf("syncsvc: %w", err)
	}
	return token, path, true, nil
}
