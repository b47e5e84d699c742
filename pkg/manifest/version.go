package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// FormatV2 is ManifestHeader.format: a version signed through its header, its
// content authenticated by digests (docs/manifest-distribution.md, "Format 2").
const FormatV2 = 2

// headerDomain separates header signatures from every other signature.
const headerDomain = "flagforge.manifest.v2.ManifestHeader\n"

// ErrNotNext says a delta does not start at the version held (a gap): the receiver
// must read the full manifest.
var ErrNotNext = errors.New("manifest: delta does not start at the version held")

// Version is one version of an environment: its manifest (canonical), and for
// format 2 its signed header and content digests. It is immutable and safe for
// concurrent use; versions built from one another share what did not change, so
// building the next version from a delta costs what the delta changes. Use it by
// pointer only.
type Version struct {
	m      *manifestv1.Manifest
	header *manifestv1.SignedHeader // nil: format 1
	// legacy is the format-1 signed manifest (nil: format 2, or a format-1 version
	// built from a delta whose publisher attached no result signature).
	legacy *manifestv1.SignedManifest

	contentOnce sync.Once
	content     *Content
	contentErr  error

	digestOnce sync.Once
	digest     []byte

	fullOnce sync.Once
	full     *manifestv1.SignedManifest
	fullErr  error
}

// Manifest is the version's manifest. Callers must not mutate it.
func (v *Version) Manifest() *manifestv1.Manifest { return v.m }

// Number is the version number.
func (v *Version) Number() uint64 { return v.m.GetVersion() }

// Header is the signed header (nil for a format-1 version).
func (v *Version) Header() *manifestv1.SignedHeader { return v.header }

// Format is 2 for a header-signed version, 1 otherwise.
func (v *Version) Format() int {
	if v.header != nil {
		return FormatV2
	}
	return 1
}

// Digest is the chain digest of the version, which the next version names as its
// previous digest: SHA-256 of the header bytes (format 2), of the payload (format 1).
func (v *Version) Digest() []byte {
	v.digestOnce.Do(func() {
		switch {
		case v.header != nil:
			v.digest = Digest(v.header.GetHeader())
		case v.legacy != nil:
			v.digest = Digest(v.legacy.GetPayload())
		default:
			if p, err := Encode(v.m); err == nil {
				v.digest = Digest(p)
			}
		}
	})
	return v.digest
}

// Signed is the complete signed copy of the version, as handed to pollers, new
// subscribers and disk: format 2, the header and the full manifest as payload
// (encoded once, on first use: O(N)); format 1, the signed manifest it arrived as
// or was rebuilt from (ErrNoResult when none is known).
func (v *Version) Signed() (*manifestv1.SignedManifest, error) {
	v.fullOnce.Do(func() {
		switch {
		case v.header != nil:
			p, err := Encode(v.m)
			v.full, v.fullErr = &manifestv1.SignedManifest{Payload: p, Header: v.header}, err
		case v.legacy != nil:
			v.full = v.legacy
		default:
			v.fullErr = ErrNoResult
		}
	})
	return v.full, v.fullErr
}

// contents is the content digest state (computed on first use for a format-1
// version, which a format-2 delta may follow).
func (v *Version) contents() (*Content, error) {
	v.contentOnce.Do(func() {
		if v.content == nil {
			v.content, v.contentErr = NewContent(v.m)
		}
	})
	return v.content, v.contentErr
}

func newVersion(m *manifestv1.Manifest, sh *manifestv1.SignedHeader, c *Content) *Version {
	return &Version{m: m, header: sh, content: c}
}

// headerOf is the header of m with content digest c.
func headerOf(m *manifestv1.Manifest, c []byte) *manifestv1.ManifestHeader {
	return &manifestv1.ManifestHeader{
		Format: FormatV2, Org: m.GetOrg(), Project: m.GetProject(), Environment: m.GetEnvironment(),
		Version: m.GetVersion(), Bucketing: m.GetBucketing(), IssuedAt: m.GetIssuedAt(), ExpiresAt: m.GetExpiresAt(),
		PreviousDigest: m.GetPreviousDigest(), PublisherEpoch: m.GetPublisherEpoch(), ContentDigest: c,
		PrivateAttributes: m.GetPrivateAttributes(),
	}
}

// withEntries is a manifest with h's header fields and the given entries.
func withEntries(h *manifestv1.ManifestHeader, flags []*manifestv1.Flag, segs []*manifestv1.Segment, keys []*manifestv1.SdkKey) *manifestv1.Manifest {
	return &manifestv1.Manifest{
		Org: h.GetOrg(), Project: h.GetProject(), Environment: h.GetEnvironment(), Version: h.GetVersion(),
		Bucketing: h.GetBucketing(), IssuedAt: h.GetIssuedAt(), ExpiresAt: h.GetExpiresAt(),
		PreviousDigest: h.GetPreviousDigest(), PublisherEpoch: h.GetPublisherEpoch(),
		Flags: flags, Segments: segs, SdkKeys: keys, PrivateAttributes: h.GetPrivateAttributes(),
	}
}

// Header signs h (format 2).
func (s *Signer) Header(h *manifestv1.ManifestHeader) (*manifestv1.SignedHeader, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("manifest: encoding header: %w", err)
	}
	sig, err := s.sign(headerDomain, b)
	if err != nil {
		return nil, err
	}
	return &manifestv1.SignedHeader{Header: b, KeyId: s.keyID, Signature: sig}, nil
}

// First signs m in format 2 as is (header fields included; m is canonicalized in
// place) and returns its version. It costs O(N): the publisher calls it for a
// version it has no predecessor state for (version 1, a rebuild, a format change).
func (s *Signer) First(m *manifestv1.Manifest) (*Version, error) {
	Canonicalize(m)
	c, err := NewContent(m)
	if err != nil {
		return nil, err
	}
	if m.GetVersion() == 0 || m.GetExpiresAt() == nil {
		return nil, fmt.Errorf("%w: version and expiresAt are required", ErrMalformed)
	}
	sh, err := s.Header(headerOf(m, c.Digest()))
	if err != nil {
		return nil, err
	}
	return newVersion(m, sh, c), nil
}

// Next signs the version that d makes of cur and returns it with its signed delta.
// d names the changed entries (upserted/deleted flags and segments, SdkKeysChanged
// with the whole key list, PrivateAttributesChanged with the whole list) and the new
// version's to_version (cur's number + 1), issued_at, expires_at and
// publisher_epoch; Next fills in its environment, from_version and previous_digest
// (cur.Digest()). The cost is that of the change (O(changed entries * N/256)), never
// an encoding of the whole manifest. cur is not modified; d must not be mutated
// afterwards (the new version shares its messages).
func (s *Signer) Next(cur *Version, d *manifestv1.ManifestDelta) (*Version, *manifestv1.SignedDelta, error) {
	m := cur.m
	d.Org, d.Project, d.Environment = m.GetOrg(), m.GetProject(), m.GetEnvironment()
	d.FromVersion = m.GetVersion()
	d.PreviousDigest = cur.Digest()
	if d.GetToVersion() != d.GetFromVersion()+1 {
		return nil, nil, fmt.Errorf("%w: version %d cannot follow %d (gapless)", ErrMalformed, d.GetToVersion(), d.GetFromVersion())
	}
	if d.GetExpiresAt() == nil {
		return nil, nil, fmt.Errorf("%w: expiresAt is required", ErrMalformed)
	}
	flags, segs, keys, c, err := cur.step(d)
	if err != nil {
		return nil, nil, err
	}
	private := m.GetPrivateAttributes()
	if d.GetPrivateAttributesChanged() {
		private = d.GetPrivateAttributes()
	}
	h := headerOf(&manifestv1.Manifest{
		Org: m.GetOrg(), Project: m.GetProject(), Environment: m.GetEnvironment(), Version: d.GetToVersion(),
		Bucketing: m.GetBucketing(), IssuedAt: d.GetIssuedAt(), ExpiresAt: d.GetExpiresAt(),
		PreviousDigest: d.GetPreviousDigest(), PublisherEpoch: d.GetPublisherEpoch(), PrivateAttributes: private,
	}, c.Digest())
	sh, err := s.Header(h)
	if err != nil {
		return nil, nil, err
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest: encoding delta: %w", err)
	}
	next := newVersion(withEntries(h, flags, segs, keys), sh, c)
	return next, &manifestv1.SignedDelta{Payload: payload, Header: sh}, nil
}

// Resign signs cur's version again with a new issuedAt and expiresAt (the same
// content and chain link), to extend its expiry.
func (s *Signer) Resign(cur *Version, issuedAt, expiresAt time.Time) (*Version, error) {
	c, err := cur.contents()
	if err != nil {
		return nil, err
	}
	m := cur.m
	h := headerOf(m, c.Digest())
	h.IssuedAt, h.ExpiresAt = timestamppb.New(issuedAt), timestamppb.New(expiresAt)
	sh, err := s.Header(h)
	if err != nil {
		return nil, err
	}
	return newVersion(withEntries(h, m.GetFlags(), m.GetSegments(), m.GetSdkKeys()), sh, c), nil
}

// Restore rebuilds a format-2 version from its manifest and signed header (a stored
// checkpoint), checking that they match; the signature is not checked (use
// Verifier.Open for anything from outside).
func Restore(m *manifestv1.Manifest, sh *manifestv1.SignedHeader) (*Version, error) {
	return open(&manifestv1.SignedManifest{Header: sh}, m, func(*manifestv1.SignedHeader) (*manifestv1.ManifestHeader, error) {
		var h manifestv1.ManifestHeader
		if err := proto.Unmarshal(sh.GetHeader(), &h); err != nil {
			return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
		}
		return &h, nil
	})
}

// header verifies sh and returns the header it signs.
func (v *Verifier) header(sh *manifestv1.SignedHeader) (*manifestv1.ManifestHeader, error) {
	if err := v.check(headerDomain, sh.GetKeyId(), sh.GetHeader(), sh.GetSignature()); err != nil {
		return nil, err
	}
	var h manifestv1.ManifestHeader
	if err := proto.Unmarshal(sh.GetHeader(), &h); err != nil {
		return nil, fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	switch {
	case h.GetFormat() != FormatV2:
		return nil, fmt.Errorf("%w: unknown manifest format %d", ErrMalformed, h.GetFormat())
	case h.GetVersion() == 0 || h.GetExpiresAt() == nil || len(h.GetContentDigest()) != sha256.Size:
		return nil, fmt.Errorf("%w: version, expiresAt and contentDigest are required", ErrMalformed)
	}
	if now := v.now(); !now.Before(h.GetExpiresAt().AsTime()) {
		return nil, fmt.Errorf("%w: version %d of %s/%s/%s expired at %s", ErrExpired, h.GetVersion(),
			h.GetOrg(), h.GetProject(), h.GetEnvironment(), h.GetExpiresAt().AsTime().Format(time.RFC3339))
	}
	return &h, nil
}

// Open verifies sm (format 1 or 2) and returns its version. Format 2 costs O(N)
// (every entry digest is computed): it is for full manifests, not for every change.
func (v *Verifier) Open(sm *manifestv1.SignedManifest) (*Version, error) {
	if sm.GetHeader() == nil {
		m, err := v.Manifest(sm)
		if err != nil {
			return nil, err
		}
		return &Version{m: m, legacy: sm}, nil
	}
	var m manifestv1.Manifest
	if err := proto.Unmarshal(sm.GetPayload(), &m); err != nil {
		if _, herr := v.header(sm.GetHeader()); herr != nil {
			return nil, herr
		}
		return nil, fmt.Errorf("%w: the payload does not decode: %w", ErrBadSignature, err)
	}
	return open(sm, &m, v.header)
}

// open checks that m (sm's payload) is what sm's header (checked by header) signs.
func open(sm *manifestv1.SignedManifest, m *manifestv1.Manifest,
	header func(*manifestv1.SignedHeader) (*manifestv1.ManifestHeader, error)) (*Version, error) {
	h, err := header(sm.GetHeader())
	if err != nil {
		return nil, err
	}
	if !proto.Equal(headerOf(m, h.GetContentDigest()), h) {
		return nil, fmt.Errorf("%w: the payload's header fields differ from the signed header", ErrBadSignature)
	}
	Canonicalize(m)
	c, err := NewContent(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSignature, err)
	}
	if !bytes.Equal(c.Digest(), h.GetContentDigest()) {
		return nil, fmt.Errorf("%w: the payload's content does not match the signed header's digest", ErrBadSignature)
	}
	ver := newVersion(m, sm.GetHeader(), c)
	if len(sm.GetPayload()) > 0 {
		ver.fullOnce.Do(func() { ver.full = sm })
	}
	return ver, nil
}

// OpenNext verifies sm as the successor of held (nil: nothing held yet), like
// Next: same environment, a version not older than held's, an equal version only
// when re-signed (a newer issuedAt).
func (v *Verifier) OpenNext(held *Version, sm *manifestv1.SignedManifest) (*Version, error) {
	ver, err := v.Open(sm)
	if err != nil {
		return nil, err
	}
	if held == nil {
		return ver, nil
	}
	if err := Follows(held.m, ver.m); err != nil {
		return nil, err
	}
	return ver, nil
}

// Follows checks that m may replace held, both verified (Verifier.Next's
// ordering): same environment, a version not older, an equal version only when
// re-signed (a newer issuedAt).
func Follows(held, m *manifestv1.Manifest) error {
	if Target(m) != Target(held) {
		return fmt.Errorf("%w: got %s, hold %s", ErrWrongTarget, Target(m), Target(held))
	}
	switch {
	case m.GetVersion() < held.GetVersion():
		return fmt.Errorf("%w: got version %d of %s, hold %d", ErrStale, m.GetVersion(), Target(m), held.GetVersion())
	case m.GetVersion() == held.GetVersion() && !m.GetIssuedAt().AsTime().After(held.GetIssuedAt().AsTime()):
		return fmt.Errorf("%w: version %d of %s is not newer than the one held", ErrStale, m.GetVersion(), Target(m))
	}
	return nil
}

// Apply verifies sd and applies it to cur, returning the next version and the
// delta. It fails with ErrStale when sd does not lead past cur, ErrNotNext when it
// does not start at cur (a gap: read the full manifest), ErrWrongTarget for another
// environment, and the verification errors otherwise. A format-2 delta costs what
// it changes: its header's signature, the changed entries' digests and their
// buckets; nothing is re-encoded whole. A format-1 delta is applied as before
// (Apply, Result: O(N)).
func (v *Verifier) Apply(cur *Version, sd *manifestv1.SignedDelta) (*Version, *manifestv1.ManifestDelta, error) {
	if sd.GetHeader() == nil {
		return v.applyV1(cur, sd)
	}
	h, err := v.header(sd.GetHeader())
	if err != nil {
		return nil, nil, err
	}
	held := cur.m
	switch target := h.GetOrg() + "/" + h.GetProject() + "/" + h.GetEnvironment(); {
	case target != Target(held):
		return nil, nil, fmt.Errorf("%w: delta for %s, hold %s", ErrWrongTarget, target, Target(held))
	case h.GetVersion() <= held.GetVersion():
		return nil, nil, fmt.Errorf("%w: delta to version %d, hold %d", ErrStale, h.GetVersion(), held.GetVersion())
	case h.GetVersion() != held.GetVersion()+1:
		return nil, nil, fmt.Errorf("%w: delta to version %d, hold %d", ErrNotNext, h.GetVersion(), held.GetVersion())
	case !bytes.Equal(h.GetPreviousDigest(), cur.Digest()):
		return nil, nil, fmt.Errorf("%w: version %d does not follow the version %d held (previous digest differs)",
			ErrMalformed, h.GetVersion(), held.GetVersion())
	}
	var d manifestv1.ManifestDelta
	if err := proto.Unmarshal(sd.GetPayload(), &d); err != nil {
		return nil, nil, fmt.Errorf("%w: delta to version %d does not decode: %w", ErrBadSignature, h.GetVersion(), err)
	}
	if err := deltaMatches(&d, sd.GetPayload(), h, held); err != nil {
		return nil, nil, fmt.Errorf("%w: delta %d->%d under the header of version %d: %w", ErrBadSignature,
			d.GetFromVersion(), d.GetToVersion(), h.GetVersion(), err)
	}
	flags, segs, keys, c, err := cur.step(&d)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: delta to version %d: %w", ErrBadSignature, h.GetVersion(), err)
	}
	if !bytes.Equal(c.Digest(), h.GetContentDigest()) {
		return nil, nil, fmt.Errorf("%w: delta to version %d does not produce the signed content digest", ErrBadSignature, h.GetVersion())
	}
	return newVersion(withEntries(h, flags, segs, keys), sd.GetHeader(), c), &d, nil
}

// deltaMatches checks that d (decoded from payload) is the delta Signer.Next signs
// under h from held: its canonical encoding, and header fields equal to h's. Its
// entries are checked by the content digest.
func deltaMatches(d *manifestv1.ManifestDelta, payload []byte, h *manifestv1.ManifestHeader, held *manifestv1.Manifest) error {
	private := held.GetPrivateAttributes()
	if d.GetPrivateAttributesChanged() {
		private = d.GetPrivateAttributes()
	}
	switch {
	case d.GetFromVersion() != held.GetVersion() || d.GetToVersion() != h.GetVersion():
		return errors.New("versions differ")
	case d.GetOrg() != h.GetOrg() || d.GetProject() != h.GetProject() || d.GetEnvironment() != h.GetEnvironment():
		return errors.New("environment differs")
	case !proto.Equal(d.GetIssuedAt(), h.GetIssuedAt()) || !proto.Equal(d.GetExpiresAt(), h.GetExpiresAt()) ||
		!bytes.Equal(d.GetPreviousDigest(), h.GetPreviousDigest()) || d.GetPublisherEpoch() != h.GetPublisherEpoch():
		return errors.New("header fields differ")
	case !slices.Equal(private, h.GetPrivateAttributes()) || (!d.GetPrivateAttributesChanged() && len(d.GetPrivateAttributes()) > 0):
		return errors.New("private attributes differ")
	case !d.GetSdkKeysChanged() && len(d.GetSdkKeys()) > 0, len(d.GetResultDigest()) > 0:
		return errors.New("unexpected fields")
	}
	canon, err := proto.MarshalOptions{Deterministic: true}.Marshal(d)
	if err != nil || !bytes.Equal(canon, payload) {
		return errors.New("not in canonical form")
	}
	return nil
}

func (v *Verifier) applyV1(cur *Version, sd *manifestv1.SignedDelta) (*Version, *manifestv1.ManifestDelta, error) {
	d, err := v.Delta(sd)
	if err != nil {
		return nil, nil, err
	}
	held := cur.m
	switch {
	case d.GetOrg() != held.GetOrg() || d.GetProject() != held.GetProject() || d.GetEnvironment() != held.GetEnvironment():
		return nil, nil, fmt.Errorf("%w: delta for %s/%s/%s, hold %s", ErrWrongTarget, d.GetOrg(), d.GetProject(), d.GetEnvironment(), Target(held))
	case d.GetToVersion() <= held.GetVersion():
		return nil, nil, fmt.Errorf("%w: delta to version %d, hold %d", ErrStale, d.GetToVersion(), held.GetVersion())
	case d.GetFromVersion() != held.GetVersion():
		return nil, nil, fmt.Errorf("%w: delta %d->%d, hold %d", ErrNotNext, d.GetFromVersion(), d.GetToVersion(), held.GetVersion())
	}
	m, err := Apply(held, d)
	if err != nil {
		return nil, nil, err
	}
	signed, err := v.Result(sd, m)
	if err != nil && !errors.Is(err, ErrNoResult) {
		return nil, nil, err
	}
	return &Version{m: m, legacy: signed}, d, nil
}

// step applies d's entries to v: the next version's flags, segments and SDK keys
// (canonical) and content digests. It refuses (ErrMalformed) a key upserted twice,
// both upserted and deleted, or deleted while absent.
func (v *Version) step(d *manifestv1.ManifestDelta) ([]*manifestv1.Flag, []*manifestv1.Segment, []*manifestv1.SdkKey, *Content, error) {
	c, err := v.contents()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	m := v.m
	var ops []op
	flags, err := upsert(m.GetFlags(), d.GetUpsertedFlags(), d.GetDeletedFlags(), (*manifestv1.Flag).GetKey, kindFlag, &ops)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	segs, err := upsert(m.GetSegments(), d.GetUpsertedSegments(), d.GetDeletedSegments(), (*manifestv1.Segment).GetKey, kindSegment, &ops)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keys := m.GetSdkKeys()
	if d.GetSdkKeysChanged() {
		keys = slices.Clone(d.GetSdkKeys())
		slices.SortFunc(keys, func(a, b *manifestv1.SdkKey) int { return strings.Compare(a.GetId(), b.GetId()) })
		now := make(map[string]bool, len(keys))
		for i, k := range keys {
			if k == nil || k.GetId() == "" || (i > 0 && keys[i-1].GetId() == k.GetId()) {
				return nil, nil, nil, nil, fmt.Errorf("%w: SDK keys: a missing or repeated id", ErrMalformed)
			}
			now[k.GetId()] = true
			ops = append(ops, op{kindSDKKey, k.GetId(), k})
		}
		for _, k := range m.GetSdkKeys() {
			if !now[k.GetId()] {
				ops = append(ops, op{kind: kindSDKKey, key: k.GetId()})
			}
		}
	}
	next, err := c.with(ops)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return flags, segs, keys, next, nil
}

// upsert applies upserts and deletes to list (sorted by key, unique) by binary
// search, returning a new sorted list (list itself when nothing changes) and
// appending the content ops.
func upsert[T interface {
	comparable
	proto.Message
}](list, upserts []T, deletes []string, key func(T) string, kind byte, ops *[]op) ([]T, error) {
	if len(upserts) == 0 && len(deletes) == 0 {
		return list, nil
	}
	seen := make(map[string]bool, len(upserts)+len(deletes))
	out := slices.Clone(list)
	find := func(k string) (int, bool) {
		return slices.BinarySearchFunc(out, k, func(e T, k string) int { return strings.Compare(key(e), k) })
	}
	for _, k := range deletes {
		if seen[k] {
			return nil, fmt.Errorf("%w: %s %q deleted twice", ErrMalformed, kindName(kind), k)
		}
		seen[k] = true
		i, found := find(k)
		if !found {
			return nil, fmt.Errorf("%w: deleting %s %q, which is not there", ErrMalformed, kindName(kind), k)
		}
		out = slices.Delete(out, i, i+1)
		*ops = append(*ops, op{kind: kind, key: k})
	}
	var zero T
	for _, u := range upserts {
		if u == zero || key(u) == "" {
			return nil, fmt.Errorf("%w: an upserted %s without a key", ErrMalformed, kindName(kind))
		}
		k := key(u)
		if seen[k] {
			return nil, fmt.Errorf("%w: %s %q changed twice in one delta", ErrMalformed, kindName(kind), k)
		}
		seen[k] = true
		if i, found := find(k); found {
			out[i] = u
		} else {
			out = slices.Insert(out, i, u)
		}
		*ops = append(*ops, op{kind, k, u})
	}
	return out, nil
}

// HasSigned reports whether Signed has a signed copy to give (format 2 always; format
// 1 when the signed manifest is known), without building it.
func (v *Version) HasSigned() bool { return v.header != nil || v.legacy != nil }

// Same reports whether sm is exactly the signed statement v was verified from: the
// same header and signature (format 2; the header commits to the content), the
// same payload and signature (format 1).
func (v *Version) Same(sm *manifestv1.SignedManifest) bool {
	if sh := v.header; sh != nil {
		return sm.GetHeader() != nil && bytes.Equal(sh.GetHeader(), sm.GetHeader().GetHeader()) &&
			bytes.Equal(sh.GetSignature(), sm.GetHeader().GetSignature())
	}
	return v.legacy != nil && sm.GetHeader() == nil && bytes.Equal(v.legacy.GetPayload(), sm.GetPayload()) &&
		bytes.Equal(v.legacy.GetSignature(), sm.GetSignature())
}

// DeltaTarget names the environment sd claims to be for ("org/project/environment"),
// without verifying it (Verifier.Apply does): it picks the version to apply sd to.
func DeltaTarget(sd *manifestv1.SignedDelta) (target string, to uint64, err error) {
	if sh := sd.GetHeader(); sh != nil {
		var h manifestv1.ManifestHeader
		if err := proto.Unmarshal(sh.GetHeader(), &h); err != nil {
			return "", 0, fmt.Errorf("%w: header: %w", ErrMalformed, err)
		}
		return h.GetOrg() + "/" + h.GetProject() + "/" + h.GetEnvironment(), h.GetVersion(), nil
	}
	var d manifestv1.ManifestDelta
	if err := proto.Unmarshal(sd.GetPayload(), &d); err != nil {
		return "", 0, fmt.Errorf("%w: delta: %w", ErrMalformed, err)
	}
	return d.GetOrg() + "/" + d.GetProject() + "/" + d.GetEnvironment(), d.GetToVersion(), nil
}
