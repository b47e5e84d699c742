package syncsvc

import (
	"os"
	"path/filepath"
	"testing"
)

// TestLoadOrCreateTokenIsStable: the first call creates a private token file, the
// next ones return the same token.
func TestLoadOrCreateTokenIsStable(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	tok, path, created, err := LoadOrCreateToken(dir)
	if err != nil || !created || len(tok) < minTokenLen {
		t.Fatalf("first: %q %v %v", tok, created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	again, _, created, err := LoadOrCreateToken(dir)
	if err != nil || created || again != tok {
		t.Fatalf("second: %q (want %q) created=%v %v", again, tok, created, err)
	}
	if err := os.WriteFile(path, []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LoadOrCreateToken(dir); err == nil {
		t.Fatal("a short token was accepted")
	}
}
