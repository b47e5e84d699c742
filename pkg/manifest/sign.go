package manifest

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Domain-separation prefixes: a signature over a manifest can never be replayed as a
// signature over a delta, or the other way round.
const (
	manifestDomain = "flagforge.manifest.v1.Manifest\n"
	deltaDomain    = "flagforge.manifest.v1.ManifestDelta\n"
)

// Bucketing is the only bucketing algorithm this version produces.
const Bucketing = "murmur3-v1"

// MaxMessageBytes is the largest gRPC message a consumer of manifests accepts
// (grpc.MaxCallRecvMsgSize on the evaluator's sync client and the SDK's stream):
// a full manifest is one message, ~280 B per flag, so gRPC's default of 4 MiB
// would refuse every snapshot of an environment beyond ~15,000 flags. Manifests
// come from a trusted, authenticated server and are verified after decoding.
const MaxMessageBytes = 512 << 20

// Verification errors. Match them with errors.Is; the returned errors wrap them
// with the detail (key id, versions, times).
var (
	ErrUnknownKey   = errors.New("manifest signed with an unknown key")
	ErrBadSignature = errors.New("manifest signature does not verify")
	ErrMalformed    = errors.New("manifest payload is malformed")
	ErrExpired      = errors.New("manifest has expired")
	ErrStale        = errors.New("manifest is older than the one held")
	ErrWrongTarget  = errors.New("manifest is for another environment")
)

// Signer signs payloads with one key. It wraps any crypto.Signer whose public key is
// ed25519 (an in-memory ed25519.PrivateKey, or a KMS-backed signer).
type Signer struct {
	keyID  string
	signer crypto.Signer
}

// NewSigner returns a Signer for s, identified by KeyID(s.Public()).
func NewSigner(s crypto.Signer) (*Signer, error) {
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("manifest: signing key must be ed25519, got %T", s.Public())
	}
	return &Signer{keyID: KeyID(pub), signer: s}, nil
}

// KeyID is the id of the signer's key.
func (s *Signer) KeyID() string { return s.keyID }

// PublicKey is the signer's public key (to be trusted by verifiers).
func (s *Signer) PublicKey() ed25519.PublicKey { return s.signer.Public().(ed25519.PublicKey) }

func (s *Signer) sign(domain string, payload []byte) ([]byte, error) {
	msg := make([]byte, 0, len(domain)+len(payload))
	msg = append(append(msg, domain...), payload...)
	// ed25519 signs the message itself: opts must be crypto.Hash(0).
	sig, err := s.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("manifest: signing: %w", err)
	}
	return sig, nil
}

// checkpointDomain separates audit checkpoint signatures from manifest ones: a
// signature of one can never pass for the other.
const checkpointDomain = "flagforge.audit.Checkpoint\n"

// Checkpoint signs an audit checkpoint payload (the control plane's record of an
// organization's audit chain head) with the manifest key.
func (s *Signer) Checkpoint(payload []byte) ([]byte, error) { return s.sign(checkpointDomain, payload) }

// Checkpoint verifies a checkpoint payload's signature by key keyID.
func (v *Verifier) Checkpoint(keyID string, payload, sig []byte) error {
	return v.check(checkpointDomain, keyID, payload, sig)
}

// Manifest encodes m deterministically and signs it.
func (s *Signer) Manifest(m *manifestv1.Manifest) (*manifestv1.SignedManifest, error) {
	payload, err := Encode(m)
	if err != nil {
		return nil, err
	}
	sig, err := s.sign(manifestDomain, payload)
	if err != nil {
		return nil, err
	}
	return &manifestv1.SignedManifest{Payload: payload, KeyId: s.keyID, Signature: sig}, nil
}

// Delta encodes d deterministically and signs it.
func (s *Signer) Delta(d *manifestv1.ManifestDelta) (*manifestv1.SignedDelta, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("manifest: encoding delta: %w", err)
	}
	sig, err := s.sign(deltaDomain, payload)
	if err != nil {
		return nil, err
	}
	return &manifestv1.SignedDelta{Payload: payload, KeyId: s.keyID, Signature: sig}, nil
}

// Encode is the one encoding of a manifest that is signed and digested: deterministic
// protobuf binary.
func Encode(m *manifestv1.Manifest) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encoding: %w", err)
	}
	return b, nil
}

// Digest is the SHA-256 of a signed payload; manifests chain by it
// (Manifest.previous_digest) and deltas name their result by it.
func Digest(payload []byte) []byte {
	d := sha256.Sum256(payload)
	return d[:]
}

// Verifier checks signed manifests and deltas against a set of trusted keys.
// It is immutable and safe for concurrent use.
type Verifier struct {
	keys map[string]ed25519.PublicKey
	now  func() time.Time
}

// NewVerifier trusts keys (at least one). now is the clock used for expiry (nil:
// time.Now).
func NewVerifier(now func() time.Time, keys ...ed25519.PublicKey) (*Verifier, error) {
	if len(keys) == 0 {
		return nil, errors.New("manifest: a verifier needs at least one trusted key")
	}
	v := &Verifier{keys: make(map[string]ed25519.PublicKey, len(keys)), now: now}
	if v.now == nil {
		v.now = time.Now
	}
	for _, k := range keys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("manifest: trusted key has %d bytes, want %d", len(k), ed25519.PublicKeySize)
		}
		v.keys[KeyID(k)] = k
	}
	return v, nil
}

func (v *Verifier) check(domain, keyID string, payload, sig []byte) error {
	pub, ok := v.keys[keyID]
	if !ok {
		return fmt.Errorf("%w (key id %q)", ErrUnknownKey, keyID)
	}
	msg := make([]byte, 0, len(domain)+len(payload))
	msg = append(append(msg, domain...), payload...)
	if !ed25519.Verify(pub, msg, sig) {
		return fmt.Errorf("%w (key id %q)", ErrBadSignature, keyID)
	}
	return nil
}

// Manifest verifies sm and returns the manifest it carries.
func (v *Verifier) Manifest(sm *manifestv1.SignedManifest) (*manifestv1.Manifest, error) {
	if err := v.check(manifestDomain, sm.GetKeyId(), sm.GetPayload(), sm.GetSignature()); err != nil {
		return nil, err
	}
	var m manifestv1.Manifest
	if err := proto.Unmarshal(sm.GetPayload(), &m); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if m.GetVersion() == 0 || m.GetExpiresAt() == nil {
		return nil, fmt.Errorf("%w: version and expiresAt are required", ErrMalformed)
	}
	if now := v.now(); !now.Before(m.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: version %d of %s expired at %s", ErrExpired, m.GetVersion(), Target(&m),
			m.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	return &m, nil
}

// Delta verifies sd and returns the delta it carries.
func (v *Verifier) Delta(sd *manifestv1.SignedDelta) (*manifestv1.ManifestDelta, error) {
	if err := v.check(deltaDomain, sd.GetKeyId(), sd.GetPayload(), sd.GetSignature()); err != nil {
		return nil, err
	}
	var d manifestv1.ManifestDelta
	if err := proto.Unmarshal(sd.GetPayload(), &d); err != nil {
		return nil, fmt.Errorf("%w: delta: %w", ErrMalformed, err)
	}
	if d.GetToVersion() <= d.GetFromVersion() || d.GetExpiresAt() == nil {
		return nil, fmt.Errorf("%w: delta %d->%d", ErrMalformed, d.GetFromVersion(), d.GetToVersion())
	}
	if now := v.now(); !now.Before(d.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: delta to version %d expired at %s", ErrExpired, d.GetToVersion(),
			d.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	return &d, nil
}

// Next verifies sm as the successor of held (nil: nothing held yet): same
// environment, and a version not older than held's. An equal version is accepted
// only when it is a re-signing (a newer issuedAt), which extends the expiry.
func (v *Verifier) Next(held *manifestv1.Manifest, sm *manifestv1.SignedManifest) (*manifestv1.Manifest, error) {
	m, err := v.Manifest(sm)
	if err != nil {
		return nil, err
	}
	if held == nil {
		return m, nil
	}
	if Target(m) != Target(held) {
		return nil, fmt.Errorf("%w: got %s, hold %s", ErrWrongTarget, Target(m), Target(held))
	}
	switch {
	case m.GetVersion() < held.GetVersion():
		return nil, fmt.Errorf("%w: got version %d of %s, hold %d", ErrStale, m.GetVersion(), Target(m), held.GetVersion())
	case m.GetVersion() == held.GetVersion() && !m.GetIssuedAt().AsTime().After(held.GetIssuedAt().AsTime()):
		return nil, fmt.Errorf("%w: version %d of %s is not newer than the one held", ErrStale, m.GetVersion(), Target(m))
	}
	return m, nil
}

// Target names the environment of m as "org/project/environment".
func Target(m *manifestv1.Manifest) string {
	return m.GetOrg() + "/" + m.GetProject() + "/" + m.GetEnvironment()
}

// ErrNoResult says a delta carries no signature of the manifest it produces (it was
// signed by a publisher that did not attach one): the receiver must fetch the full
// signed manifest of that version to hold it.
var ErrNoResult = errors.New("manifest: delta carries no signature of its result")

// WithResult attaches to sd the key id and signature of result, the signed manifest
// at the delta's to_version, and returns sd. A receiver that applies the delta
// rebuilds result with Verifier.Result instead of fetching it. The delta's own
// signature does not cover these fields and need not: the result signature verifies
// on its own, over the payload the receiver re-encodes.
func WithResult(sd *manifestv1.SignedDelta, result *manifestv1.SignedManifest) *manifestv1.SignedDelta {
	sd.ResultKeyId = result.GetKeyId()
	sd.ResultSignature = result.GetSignature()
	return sd
}

// Result rebuilds the signed manifest that sd produced: to is the manifest obtained
// by applying sd (Apply), which is canonical, so its encoding is byte for byte the
// payload that was signed. The rebuilt SignedManifest is verified like any manifest
// (trusted key, signature over exactly to's encoding, expiry). It returns
// ErrNoResult when sd carries no result signature.
func (v *Verifier) Result(sd *manifestv1.SignedDelta, to *manifestv1.Manifest) (*manifestv1.SignedManifest, error) {
	if len(sd.GetResultSignature()) == 0 {
		return nil, ErrNoResult
	}
	payload, err := Encode(to)
	if err != nil {
		return nil, err
	}
	sm := &manifestv1.SignedManifest{Payload: payload, KeyId: sd.GetResultKeyId(), Signature: sd.GetResultSignature()}
	// The payload is to's own encoding, so the checks Manifest makes after decoding
	// it are made on to directly (no second decode).
	if err := v.check(manifestDomain, sm.GetKeyId(), payload, sm.GetSignature()); err != nil {
		return nil, err
	}
	if to.GetVersion() == 0 || to.GetExpiresAt() == nil {
		return nil, fmt.Errorf("%w: version and expiresAt are required", ErrMalformed)
	}
	if now := v.now(); !now.Before(to.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: version %d of %s expired at %s", ErrExpired, to.GetVersion(), Target(to),
			to.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	return sm, nil
}
