package signing_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
)

func TestGenerateWritesAPrivateKeyOnlyTheOwnerCanRead(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := signing.Generate(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, signing.PrivateKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v, want 0600", st.Mode().Perm())
	}
	pubPEM, err := os.ReadFile(filepath.Join(dir, signing.PublicKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	pubs, err := manifest.ParsePublicKeys(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := signing.Load(signing.Config{Key: filepath.Join(dir, signing.PrivateKeyFile)})
	if err != nil {
		t.Fatal(err)
	}
	if !s.PublicKey().Equal(pubs[0]) {
		t.Fatal("public key file does not match the private key")
	}
	if err := signing.Generate(dir); err == nil {
		t.Fatal("Generate overwrote an existing key")
	}
}

func TestDataDirKeyIsGeneratedOnFirstRunAndReusedAfter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, created, err := signing.Load(signing.Config{DataDir: dir})
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	second, created, err := signing.Load(signing.Config{DataDir: dir})
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if first.KeyID() != second.KeyID() {
		t.Fatalf("key changed between runs: %s then %s", first.KeyID(), second.KeyID())
	}
}

func TestInlinePEMKeyIsAccepted(t *testing.T) {
	t.Parallel()
	priv, _, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, _, err := signing.Load(signing.Config{Key: string(priv)})
	if err != nil {
		t.Fatal(err)
	}
	pemText, err := signing.PublicKeyPEM(s)
	if err != nil || !strings.Contains(string(pemText), "PUBLIC KEY") {
		t.Fatalf("public PEM: %q %v", pemText, err)
	}
	if _, _, err := signing.Load(signing.Config{}); err == nil {
		t.Fatal("no key source accepted")
	}
}
