// Package auth authenticates evaluation calls by SDK key.
//
// Every call carries "authorization: Bearer <key>" (gRPC metadata; the REST gateway
// forwards the HTTP header as the same metadata). The SHA-256 of the key is looked
// up in an Index built from the SdkKey entries of the loaded manifests, which names
// the environment and the kind of the key. A missing, unknown or expired key is an
// errs.Unauthenticated error; the message never says which, nor echoes the key.
package auth

import (
	"context"
	"crypto/sha256"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// Kind is what a key may do.
type Kind uint8

// Key kinds.
const (
	// Server keys evaluate every flag.
	Server Kind = iota + 1
	// Client keys evaluate only client-visible flags.
	Client
)

// Grant is what one SDK key gives access to.
type Grant struct {
	// Environment is "org/project/environment".
	Environment string
	Kind        Kind
	// ExpiresAt is zero when the key does not expire.
	ExpiresAt time.Time
	// KeyHash is the SHA-256 of the key (set by Lookup): it identifies the key for
	// rate limits, stream caps and revocation without keeping the secret.
	KeyHash [sha256.Size]byte
}

// Index maps the SHA-256 of an SDK key to its grant. It is immutable once built.
type Index map[[sha256.Size]byte]Grant

// errUnauthenticated is the one answer to every authentication failure.
var errUnauthenticated = errs.E(errs.Unauthenticated, "missing, unknown or expired SDK key")

// BuildIndex indexes the SDK keys of manifests (one per environment). Keys of an
// unspecified kind are ignored; should two environments list the same hash, the
// first manifest given wins.
func BuildIndex(manifests []*manifestv1.Manifest) Index {
	n := 0
	for _, m := range manifests {
		n += len(m.GetSdkKeys())
	}
	ix := make(Index, n)
	for _, m := range manifests {
		target := manifest.Target(m)
		for _, k := range m.GetSdkKeys() {
			var g Grant
			switch k.GetKind() {
			case manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER:
				g.Kind = Server
			case manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT:
				g.Kind = Client
			default:
				continue
			}
			if len(k.GetHash()) != sha256.Size {
				continue
			}
			g.Environment = target
			if k.GetExpiresAt() != nil {
				g.ExpiresAt = k.GetExpiresAt().AsTime()
			}
			var h [sha256.Size]byte
			copy(h[:], k.GetHash())
			if _, dup := ix[h]; !dup {
				ix[h] = g
			}
		}
	}
	return ix
}

// Authenticate returns the grant of the key carried by ctx at time now.
func (ix Index) Authenticate(ctx context.Context, now time.Time) (Grant, error) {
	key, ok := BearerKey(ctx)
	if !ok {
		return Grant{}, errUnauthenticated
	}
	return ix.Lookup(key, now)
}

// Lookup returns the grant of key at time now.
func (ix Index) Lookup(key string, now time.Time) (Grant, error) {
	h := sha256.Sum256([]byte(key))
	g, ok := ix[h]
	if !ok || (!g.ExpiresAt.IsZero() && !now.Before(g.ExpiresAt)) {
		return Grant{}, errUnauthenticated
	}
	g.KeyHash = h
	return g, nil
}

// Valid reports whether the key with this hash still grants kind on environment
// at time now (a revoked key is absent from the index; an expired one is past
// ExpiresAt). Open streams use it to notice revocation.
func (ix Index) Valid(hash [sha256.Size]byte, environment string, kind Kind, now time.Time) bool {
	g, ok := ix[hash]
	return ok && g.Environment == environment && g.Kind == kind && (g.ExpiresAt.IsZero() || now.Before(g.ExpiresAt))
}

// BearerKey extracts the key from the incoming "authorization" metadata.
func BearerKey(ctx context.Context) (string, bool) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return "", false
	}
	vals := md["authorization"]
	if len(vals) != 1 {
		return "", false
	}
	v := vals[0]
	const prefix = "bearer "
	if len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", false
	}
	key := strings.TrimSpace(v[len(prefix):])
	return key, key != ""
}
