package publisher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// envState is the latest stored version of an environment, held in memory
// between versions by the leading publisher so that the next version is built
// from what changed only. It is immutable: a new version gets a new envState.
//
// The state is valid for one leadership: the fencing epoch guarantees that no
// other publisher stores a version meanwhile. It is dropped when leadership
// starts or a commit fails (the commit may or may not have landed), and loaded
// again from the database (the latest stored version) when next needed.
type envState struct {
	version uint64
	digest  []byte
	// m is the manifest of version, canonical (sorted by key).
	m *manifestv1.Manifest
}

// states holds the envState of each environment published in this leadership.
// Only the leading goroutine (drain, resign) uses it.
type states map[store.EnvRef]*envState

// stateOf returns ref's state, loading the latest stored version when it is not
// held; nil (and no error) when no version was ever stored.
func (p *Publisher) stateOf(ctx context.Context, ref store.EnvRef) (*envState, error) {
	if st, ok := p.state[ref]; ok {
		return st, nil
	}
	latest, err := p.d.Store.LatestManifest(ctx, ref)
	if errors.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := &manifestv1.Manifest{}
	if err := proto.Unmarshal(latest.Signed.GetPayload(), m); err != nil {
		return nil, fmt.Errorf("stored version %d: %w", latest.Version, err)
	}
	st := &envState{version: latest.Version, digest: latest.Digest, m: m}
	p.state[ref] = st
	return st, nil
}

// contentDelta returns the entries that turn the content of from into to
// (flags and segments compared whole, SDK keys and private attributes as lists),
// the version fields left for the caller. It reads both manifests once: the
// path for a change the outbox could not narrow down.
func contentDelta(from, to *manifestv1.Manifest) *manifestv1.ManifestDelta {
	d := &manifestv1.ManifestDelta{}
	keys := map[string]bool{}
	for _, f := range to.GetFlags() {
		keys[f.GetKey()] = true
	}
	for _, f := range from.GetFlags() {
		keys[f.GetKey()] = true
	}
	segs := map[string]bool{}
	for _, s := range to.GetSegments() {
		segs[s.GetKey()] = true
	}
	for _, s := range from.GetSegments() {
		segs[s.GetKey()] = true
	}
	entriesDelta(d, from, &store.EnvEntries{Flags: to.GetFlags(), Segments: to.GetSegments(), SdkKeys: to.GetSdkKeys(),
		PrivateAttributes: to.GetPrivateAttributes()}, sortedKeys(keys), sortedKeys(segs))
	return d
}

// entriesDelta adds to d what differs between the named flags and segments of
// from and their current form in e (absent from e: deleted), and the SDK keys and
// private attributes when they differ. Cost: the named entries, plus the SDK
// keys and private attributes.
func entriesDelta(d *manifestv1.ManifestDelta, from *manifestv1.Manifest, e *store.EnvEntries, flags, segments []string) {
	for _, k := range flags {
		now, inNow := findFlag(e.Flags, k)
		old, inOld := findFlag(from.GetFlags(), k)
		switch {
		case inNow && (!inOld || !proto.Equal(old, now)):
			d.UpsertedFlags = append(d.UpsertedFlags, now)
		case !inNow && inOld:
			d.DeletedFlags = append(d.DeletedFlags, k)
		}
	}
	for _, k := range segments {
		now, inNow := findSegment(e.Segments, k)
		old, inOld := findSegment(from.GetSegments(), k)
		switch {
		case inNow && (!inOld || !proto.Equal(old, now)):
			d.UpsertedSegments = append(d.UpsertedSegments, now)
		case !inNow && inOld:
			d.DeletedSegments = append(d.DeletedSegments, k)
		}
	}
	if !slices.EqualFunc(from.GetSdkKeys(), e.SdkKeys, func(a, b *manifestv1.SdkKey) bool { return proto.Equal(a, b) }) {
		d.SdkKeysChanged, d.SdkKeys = true, e.SdkKeys
	}
	if !slices.Equal(from.GetPrivateAttributes(), e.PrivateAttributes) {
		d.PrivateAttributesChanged, d.PrivateAttributes = true, e.PrivateAttributes
	}
}

// emptyDelta reports whether d changes no content.
func emptyDelta(d *manifestv1.ManifestDelta) bool {
	return len(d.GetUpsertedFlags())+len(d.GetDeletedFlags())+len(d.GetUpsertedSegments())+len(d.GetDeletedSegments()) == 0 &&
		!d.GetSdkKeysChanged() && !d.GetPrivateAttributesChanged()
}

// findFlag finds key in flags sorted by key (a canonical manifest's, or a
// store read's).
func findFlag(flags []*manifestv1.Flag, key string) (*manifestv1.Flag, bool) {
	i, ok := slices.BinarySearchFunc(flags, key, func(f *manifestv1.Flag, k string) int { return strings.Compare(f.GetKey(), k) })
	if !ok {
		return nil, false
	}
	return flags[i], true
}

func findSegment(segs []*manifestv1.Segment, key string) (*manifestv1.Segment, bool) {
	i, ok := slices.BinarySearchFunc(segs, key, func(s *manifestv1.Segment, k string) int { return strings.Compare(s.GetKey(), k) })
	if !ok {
		return nil, false
	}
	return segs[i], true
}
