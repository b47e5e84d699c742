package manifest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeyID identifies a public key: the first 16 hex digits of its SHA-256.
func KeyID(pub ed25519.PublicKey) string {
	d := sha256.Sum256(pub)
	return hex.EncodeToString(d[:8])
}

// GenerateKey makes a new ed25519 key pair, PEM-encoded (PKCS #8 private key, PKIX
// public key), as written by the `keys generate` subcommand.
func GenerateKey() (privatePEM, publicPEM []byte, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), nil
}

// ParsePrivateKey reads a PEM "PRIVATE KEY" (PKCS #8) holding an ed25519 key.
func ParsePrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("manifest: no PEM \"PRIVATE KEY\" block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: private key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("manifest: private key is %T, want ed25519", k)
	}
	return priv, nil
}

// ParsePublicKeys reads every PEM "PUBLIC KEY" (PKIX, ed25519) block in pemBytes, so
// one file or variable can hold all trusted keys during a rotation.
func ParsePublicKeys(pemBytes []byte) ([]ed25519.PublicKey, error) {
	var keys []ed25519.PublicKey
	rest := pemBytes
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			continue
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("manifest: public key %d: %w", len(keys)+1, err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("manifest: public key %d is %T, want ed25519", len(keys)+1, k)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("manifest: no PEM \"PUBLIC KEY\" block")
	}
	return keys, nil
}

// LoadPEM returns the PEM text of a key given either inline (a value starting with
// "-----BEGIN", e.g. from an environment variable) or as a file path.
func LoadPEM(valueOrPath string) ([]byte, error) {
	if strings.HasPrefix(strings.TrimSpace(valueOrPath), "-----BEGIN") {
		return []byte(valueOrPath), nil
	}
	b, err := os.ReadFile(valueOrPath)
	if err != nil {
		return nil, fmt.Errorf("manifest: reading key: %w", err)
	}
	return b, nil
}
