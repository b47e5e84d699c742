// Package manifest signs, verifies and diffs FlagForge manifests.
//
// A manifest travels as a SignedManifest: the deterministic protobuf encoding of a
// manifestv1.Manifest (the payload), the id of the signing key, and an ed25519
// signature over a domain-separation prefix plus the payload. Deltas travel the same
// way as SignedDelta. Signing goes through crypto.Signer so a key can live in a KMS;
// verification trusts several public keys at once so keys can be rotated.
//
// What a verifier guarantees (Verifier.Manifest / Verifier.Delta): the signing key is
// trusted, the signature covers exactly these bytes, the payload decodes, and the
// manifest has not expired. Ordering (refusing a version older than the one held) is
// checked by Verifier.Next, which callers use when replacing a manifest they hold.
package manifest
