// Package signing loads and creates the control plane's manifest signing key.
//
// A key is an ed25519 private key in a PEM "PRIVATE KEY" (PKCS #8) block, as
// written by Generate (the `keys generate` subcommand). Config.Key is either the
// PEM text itself or a path to it (FLAGFORGE_SIGNING_KEY); when it is empty and a
// data directory is configured (the embedded default), a key is generated on first
// run into {dataDir}/signing-key.pem (0600) and reused afterwards.
package signing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/flagforge/flagforge/pkg/manifest"
)

// File names written by Generate and by the data-directory default.
const (
	PrivateKeyFile = "signing-key.pem"
	PublicKeyFile  = "signing-key.pub.pem"
)

// Config says where the signing key comes from.
type Config struct {
	// Key is a PEM private key, inline or as a file path (FLAGFORGE_SIGNING_KEY).
	Key string `env:"SIGNING_KEY"`
	// DataDir, used only when Key is empty, holds a key generated on first run.
	DataDir string
}

// Validate checks that a key source is configured.
func (c Config) Validate() error {
	if c.Key == "" && c.DataDir == "" {
		return errors.New("signing: set FLAGFORGE_SIGNING_KEY (PEM or path) or a data directory for a generated key")
	}
	return nil
}

// Load returns the signer described by c, generating the data-directory key when
// needed. The boolean reports whether a new key was generated (log it: evaluators
// must be given the new public key).
func Load(c Config) (*manifest.Signer, bool, error) {
	if err := c.Validate(); err != nil {
		return nil, false, err
	}
	if c.Key != "" {
		pemBytes, err := manifest.LoadPEM(c.Key)
		if err != nil {
			return nil, false, fmt.Errorf("signing: %w", err)
		}
		s, err := parse(pemBytes)
		return s, false, err
	}
	path := filepath.Join(c.DataDir, PrivateKeyFile)
	pemBytes, err := os.ReadFile(path)
	if err == nil {
		s, err := parse(pemBytes)
		return s, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("signing: %w", err)
	}
	if err := Generate(c.DataDir); err != nil {
		return nil, false, err
	}
	pemBytes, err = os.ReadFile(path)
	if err != nil {
		return nil, false, fmt.Errorf("signing: %w", err)
	}
	s, err := parse(pemBytes)
	return s, true, err
}

func parse(pemBytes []byte) (*manifest.Signer, error) {
	priv, err := manifest.ParsePrivateKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	return manifest.NewSigner(priv)
}

// Generate writes a new key pair into dir: PrivateKeyFile (0600) and PublicKeyFile
// (0644, to give to evaluators). It refuses to overwrite an existing private key.
// Files are written to a temporary name and renamed, so a crash leaves no partial
// key.
func Generate(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	privPath := filepath.Join(dir, PrivateKeyFile)
	if _, err := os.Stat(privPath); err == nil {
		return fmt.Errorf("signing: %s already exists; move it away to generate a new key", privPath)
	}
	privPEM, pubPEM, err := manifest.GenerateKey()
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	// Public key first: a private key without its public half is harder to use.
	if err := writeAtomic(filepath.Join(dir, PublicKeyFile), pubPEM, 0o644); err != nil {
		return err
	}
	return writeAtomic(privPath, privPEM, 0o600)
}

// KeysGenerateCommand implements `controlplane keys generate [-dir DIR]` (default
// dir "."): it writes the key pair and prints the key id and file names.
func KeysGenerateCommand(args []string) error {
	dir := "."
	switch {
	case len(args) == 0:
	case len(args) == 2 && (args[0] == "-dir" || args[0] == "--dir"):
		dir = args[1]
	case len(args) == 1:
		dir = args[0]
	default:
		return errors.New("usage: keys generate [-dir DIR]")
	}
	if err := Generate(dir); err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(filepath.Join(dir, PublicKeyFile))
	if err != nil {
		return err
	}
	pubs, err := manifest.ParsePublicKeys(pemBytes)
	if err != nil {
		return err
	}
	_, err = fmt.Printf("key id %s\nprivate key: %s (keep secret; FLAGFORGE_SIGNING_KEY)\npublic key:  %s (trust it on evaluators)\n",
		manifest.KeyID(pubs[0]), filepath.Join(dir, PrivateKeyFile), filepath.Join(dir, PublicKeyFile))
	return err
}

// PublicKeyPEM returns the PEM of s's public key (to print or serve).
func PublicKeyPEM(s *manifest.Signer) ([]byte, error) {
	return publicPEM(s.PublicKey())
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(mode); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("signing: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("signing: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("signing: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	return nil
}
