package manifest

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Diff computes the delta that turns from into to (two versions of one environment).
// Flags and segments are compared whole: a changed one is upserted entirely. The
// delta names the digests of both payloads, so a receiver can check it starts from
// the manifest it holds and that applying it reproduced exactly `to`.
func Diff(from, to *manifestv1.Manifest) (*manifestv1.ManifestDelta, error) {
	if Target(from) != Target(to) {
		return nil, fmt.Errorf("%w: diff between %s and %s", ErrWrongTarget, Target(from), Target(to))
	}
	if to.GetVersion() <= from.GetVersion() {
		return nil, errors.New("manifest: diff needs a newer target version")
	}
	fromPayload, err := Encode(from)
	if err != nil {
		return nil, err
	}
	toPayload, err := Encode(to)
	if err != nil {
		return nil, err
	}
	prev := Digest(fromPayload)
	if len(to.GetPreviousDigest()) > 0 && string(to.GetPreviousDigest()) != string(prev) {
		return nil, fmt.Errorf("%w: version %d does not follow version %d (previous digest differs)", ErrMalformed, to.GetVersion(), from.GetVersion())
	}
	d := &manifestv1.ManifestDelta{
		Org: to.GetOrg(), Project: to.GetProject(), Environment: to.GetEnvironment(),
		FromVersion: from.GetVersion(), ToVersion: to.GetVersion(),
		IssuedAt: to.GetIssuedAt(), ExpiresAt: to.GetExpiresAt(),
		PreviousDigest: prev, PublisherEpoch: to.GetPublisherEpoch(),
		ResultDigest: Digest(toPayload),
	}

	oldFlags := make(map[string]*manifestv1.Flag, len(from.GetFlags()))
	for _, f := range from.GetFlags() {
		oldFlags[f.GetKey()] = f
	}
	seen := make(map[string]bool, len(to.GetFlags()))
	for _, f := range to.GetFlags() {
		seen[f.GetKey()] = true
		if old, ok := oldFlags[f.GetKey()]; !ok || !proto.Equal(old, f) {
			d.UpsertedFlags = append(d.UpsertedFlags, f)
		}
	}
	for _, f := range from.GetFlags() {
		if !seen[f.GetKey()] {
			d.DeletedFlags = append(d.DeletedFlags, f.GetKey())
		}
	}

	oldSegs := make(map[string]*manifestv1.Segment, len(from.GetSegments()))
	for _, s := range from.GetSegments() {
		oldSegs[s.GetKey()] = s
	}
	seenSeg := make(map[string]bool, len(to.GetSegments()))
	for _, s := range to.GetSegments() {
		seenSeg[s.GetKey()] = true
		if old, ok := oldSegs[s.GetKey()]; !ok || !proto.Equal(old, s) {
			d.UpsertedSegments = append(d.UpsertedSegments, s)
		}
	}
	for _, s := range from.GetSegments() {
		if !seenSeg[s.GetKey()] {
			d.DeletedSegments = append(d.DeletedSegments, s.GetKey())
		}
	}

	if !sameKeys(from.GetSdkKeys(), to.GetSdkKeys()) {
		d.SdkKeysChanged = true
		d.SdkKeys = to.GetSdkKeys()
	}
	if !slices.Equal(from.GetPrivateAttributes(), to.GetPrivateAttributes()) {
		d.PrivateAttributesChanged = true
		d.PrivateAttributes = to.GetPrivateAttributes()
	}
	return d, nil
}

func sameKeys(a, b []*manifestv1.SdkKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// Apply returns the manifest that d turns from into, checking that d starts from
// exactly `from` (version and digest) and, when d names a result digest, that the
// result matches it. from is not modified. The result is in canonical order (see
// Canonicalize), as every published manifest is.
func Apply(from *manifestv1.Manifest, d *manifestv1.ManifestDelta) (*manifestv1.Manifest, error) {
	if d.GetFromVersion() != from.GetVersion() {
		return nil, fmt.Errorf("%w: delta starts at version %d, hold %d", ErrStale, d.GetFromVersion(), from.GetVersion())
	}
	if d.GetOrg() != from.GetOrg() || d.GetProject() != from.GetProject() || d.GetEnvironment() != from.GetEnvironment() {
		return nil, fmt.Errorf("%w: delta for %s/%s/%s, hold %s", ErrWrongTarget, d.GetOrg(), d.GetProject(), d.GetEnvironment(), Target(from))
	}
	if len(d.GetPreviousDigest()) > 0 {
		payload, err := Encode(from)
		if err != nil {
			return nil, err
		}
		if string(Digest(payload)) != string(d.GetPreviousDigest()) {
			return nil, fmt.Errorf("%w: delta does not start from the manifest held (digest differs)", ErrMalformed)
		}
	}
	to := &manifestv1.Manifest{
		Org: from.GetOrg(), Project: from.GetProject(), Environment: from.GetEnvironment(),
		Version: d.GetToVersion(), Bucketing: from.GetBucketing(),
		IssuedAt: d.GetIssuedAt(), ExpiresAt: d.GetExpiresAt(),
		PreviousDigest: d.GetPreviousDigest(), PublisherEpoch: d.GetPublisherEpoch(),
		SdkKeys: from.GetSdkKeys(), PrivateAttributes: from.GetPrivateAttributes(),
	}
	if d.GetSdkKeysChanged() {
		to.SdkKeys = d.GetSdkKeys()
	}
	if d.GetPrivateAttributesChanged() {
		to.PrivateAttributes = d.GetPrivateAttributes()
	}
	to.Flags = mergeByKey(from.GetFlags(), d.GetUpsertedFlags(), d.GetDeletedFlags(), (*manifestv1.Flag).GetKey)
	to.Segments = mergeByKey(from.GetSegments(), d.GetUpsertedSegments(), d.GetDeletedSegments(), (*manifestv1.Segment).GetKey)
	Canonicalize(to)
	if len(d.GetResultDigest()) > 0 {
		payload, err := Encode(to)
		if err != nil {
			return nil, err
		}
		if string(Digest(payload)) != string(d.GetResultDigest()) {
			return nil, fmt.Errorf("%w: applying delta %d->%d did not reproduce the published manifest", ErrMalformed,
				d.GetFromVersion(), d.GetToVersion())
		}
	}
	return to, nil
}

// Canonicalize sorts m's flags, segments and SDK keys by key (id for SDK keys), in
// place. Publishers canonicalize before signing, so a delta applied by a receiver
// reproduces the published payload byte for byte.
func Canonicalize(m *manifestv1.Manifest) {
	slices.SortFunc(m.Flags, func(a, b *manifestv1.Flag) int { return strings.Compare(a.GetKey(), b.GetKey()) })
	slices.SortFunc(m.Segments, func(a, b *manifestv1.Segment) int { return strings.Compare(a.GetKey(), b.GetKey()) })
	slices.SortFunc(m.SdkKeys, func(a, b *manifestv1.SdkKey) int { return strings.Compare(a.GetId(), b.GetId()) })
}

func mergeByKey[T any](old, upserts []T, deletes []string, key func(T) string) []T {
	up := make(map[string]T, len(upserts))
	for _, u := range upserts {
		up[key(u)] = u
	}
	del := make(map[string]bool, len(deletes))
	for _, k := range deletes {
		del[k] = true
	}
	out := make([]T, 0, len(old)+len(upserts))
	done := make(map[string]bool, len(upserts))
	for _, o := range old {
		k := key(o)
		if del[k] {
			continue
		}
		if u, ok := up[k]; ok {
			out = append(out, u)
			done[k] = true
			continue
		}
		out = append(out, o)
	}
	for _, u := range upserts {
		if k := key(u); !done[k] && !del[k] {
			out = append(out, u)
			done[k] = true
		}
	}
	return out
}
