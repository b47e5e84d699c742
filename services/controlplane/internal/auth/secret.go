package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// Secret prefixes tell credentials apart at a glance (and to secret scanners).
const (
	// APITokenPrefix starts every admin API token.
	APITokenPrefix = "ffat_"
	// ServerSDKKeyPrefix starts server SDK keys.
	ServerSDKKeyPrefix = "ffsk_"
	// ClientSDKKeyPrefix starts client (browser) SDK keys.
	ClientSDKKeyPrefix = "ffck_"
)

// NewSecret returns prefix followed by 32 random bytes in unpadded base64url, and
// the secret's SHA-256 hash: the only thing that may be stored.
func NewSecret(prefix string) (secret string, hash []byte) {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go >= 1.24)
	secret = prefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashSecret(secret)
}

// HashSecret is the SHA-256 of a secret string, as stored and looked up.
func HashSecret(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}
