package eval

import (
	"errors"
	"fmt"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Errors of ApplyDelta and ApplyDeltaProto, wrapped in a *DeltaError; match them with
// errors.Is.
var (
	// ErrDeltaBaseMismatch: the delta starts from another version than the manifest's
	// (the receiver missed or already applied a delta; fetch a full snapshot).
	ErrDeltaBaseMismatch = errors.New("eval: delta does not start from the manifest's version")
	// ErrDeltaNotForward: the delta's to-version is not after its from-version.
	ErrDeltaNotForward = errors.New("eval: delta does not move the version forward")
	// ErrDeltaEnvironment: the delta names another org, project or environment.
	ErrDeltaEnvironment = errors.New("eval: delta is for another environment")
	// ErrNilDelta: no delta (or no manifest) was given.
	ErrNilDelta = errors.New("eval: nil delta or manifest")
)

// DeltaError says why a delta was refused.
type DeltaError struct {
	Err             error
	ManifestVersion uint64
	FromVersion     uint64
	ToVersion       uint64
}

func (e *DeltaError) Error() string {
	return fmt.Sprintf("%v (manifest version %d, delta %d -> %d)", e.Err, e.ManifestVersion, e.FromVersion, e.ToVersion)
}

func (e *DeltaError) Unwrap() error { return e.Err }

func checkDelta(m *manifestv1.Manifest, d *manifestv1.ManifestDelta) error {
	if m == nil || d == nil {
		return &DeltaError{Err: ErrNilDelta, ManifestVersion: m.GetVersion(), FromVersion: d.GetFromVersion(), ToVersion: d.GetToVersion()}
	}
	e := &DeltaError{ManifestVersion: m.GetVersion(), FromVersion: d.GetFromVersion(), ToVersion: d.GetToVersion()}
	switch {
	case d.GetFromVersion() != m.GetVersion():
		e.Err = ErrDeltaBaseMismatch
	case d.GetToVersion() <= d.GetFromVersion():
		e.Err = ErrDeltaNotForward
	case differs(d.GetOrg(), m.GetOrg()) || differs(d.GetProject(), m.GetProject()) || differs(d.GetEnvironment(), m.GetEnvironment()):
		e.Err = ErrDeltaEnvironment
	default:
		return nil
	}
	return e
}

// differs reports whether a delta's identifying field contradicts the manifest's
// (an empty field on either side is not checked).
func differs(delta, manifest string) bool {
	return delta != "" && manifest != "" && delta != manifest
}

// ApplyDeltaProto returns the manifest at d.ToVersion: m with d's flags and segments
// upserted and deleted, and the header (version, issuedAt, expiresAt, previousDigest,
// publisherEpoch, and sdkKeys when sdkKeysChanged) taken from d. Order is preserved:
// an upserted flag or segment replaces the previous one in place, a new one is
// appended in delta order; an upsert wins over a deletion of the same key. m and d are
// not modified; the result shares their unchanged messages, so none of the three may
// be mutated afterwards. It refuses a delta that does not start from m's version or
// does not move forward, with a *DeltaError.
func ApplyDeltaProto(m *manifestv1.Manifest, d *manifestv1.ManifestDelta) (*manifestv1.Manifest, error) {
	if err := checkDelta(m, d); err != nil {
		return nil, err
	}
	out := &manifestv1.Manifest{
		Org:            m.GetOrg(),
		Project:        m.GetProject(),
		Environment:    m.GetEnvironment(),
		Version:        d.GetToVersion(),
		Bucketing:      m.GetBucketing(),
		IssuedAt:       d.GetIssuedAt(),
		ExpiresAt:      d.GetExpiresAt(),
		PreviousDigest: d.GetPreviousDigest(),
		PublisherEpoch: d.GetPublisherEpoch(),
		SdkKeys:        m.GetSdkKeys(),
		// The project's private attributes (see ManifestDelta.private_attributes_changed).
		PrivateAttributes: m.GetPrivateAttributes(),
	}
	if d.GetSdkKeysChanged() {
		out.SdkKeys = d.GetSdkKeys()
	}
	if d.GetPrivateAttributesChanged() {
		out.PrivateAttributes = d.GetPrivateAttributes()
	}
	out.Flags = merge(m.GetFlags(), d.GetUpsertedFlags(), d.GetDeletedFlags(), (*manifestv1.Flag).GetKey)
	out.Segments = merge(m.GetSegments(), d.GetUpsertedSegments(), d.GetDeletedSegments(), (*manifestv1.Segment).GetKey)
	return out, nil
}

// merge applies upserts and deletions to list, preserving order.
func merge[T comparable](list, upserts []T, deletes []string, key func(T) string) []T {
	var zero T
	up := make(map[string]T, len(upserts))
	var order []string
	for _, u := range upserts {
		if u == zero {
			continue
		}
		k := key(u)
		if _, seen := up[k]; !seen {
			order = append(order, k)
		}
		up[k] = u
	}
	del := make(map[string]bool, len(deletes))
	for _, k := range deletes {
		del[k] = true
	}
	out := make([]T, 0, len(list)+len(up))
	placed := make(map[string]bool, len(up))
	for _, e := range list {
		k := key(e)
		if u, ok := up[k]; ok {
			if !placed[k] {
				out = append(out, u)
				placed[k] = true
			}
			continue
		}
		if del[k] {
			continue
		}
		out = append(out, e)
	}
	for _, k := range order {
		if !placed[k] {
			out = append(out, up[k])
		}
	}
	return out
}

// ApplyDelta returns a new compiled manifest at d.ToVersion (see ApplyDeltaProto).
// The receiver is untouched and stays usable. Flags and segments the delta does not
// change are shared with the receiver, not recompiled: compiled flags refer to
// prerequisites and segments by key, so they see changed segments and flags.
func (m *Manifest) ApplyDelta(d *manifestv1.ManifestDelta) (*Manifest, error) {
	if m == nil {
		return nil, &DeltaError{Err: ErrNilDelta}
	}
	next, err := ApplyDeltaProto(m.src, d)
	if err != nil {
		return nil, err
	}
	return compile(next, m)
}

// Update returns the compiled manifest of next, where next is this manifest's
// manifest with d applied and d's upserted flags and segments are next's very
// messages (as manifest.Verifier.Apply and ApplyDeltaProto build it). Only d's
// upserted flags and segments are compiled; everything else is shared with the
// receiver, which stays untouched and usable, and only the table buckets d
// touches are copied: the cost is that of the change, not of the environment.
// Flags that depend on a changed segment or prerequisite need no recompiling:
// compiled flags refer to them by key and resolve them in the evaluating manifest.
// When next does not look like m with d applied (flag count differs, e.g.
// duplicate keys), it compiles next whole, reusing what it can.
func (m *Manifest) Update(next *manifestv1.Manifest, d *manifestv1.ManifestDelta) (*Manifest, error) {
	if m == nil || d == nil {
		return nil, &DeltaError{Err: ErrNilDelta}
	}
	if err := checkManifest(next); err != nil {
		return nil, err
	}
	c := &checker{}
	flags, segs := m.flags.edit(), m.segments.edit()
	structural := false
	for _, k := range d.GetDeletedFlags() {
		structural = flags.del(k) || structural
	}
	for _, f := range d.GetUpsertedFlags() {
		if f == nil {
			continue
		}
		structural = flags.set(f.GetKey(), c.compileFlag(f, nil)) || structural
	}
	for _, k := range d.GetDeletedSegments() {
		segs.del(k)
	}
	for _, s := range d.GetUpsertedSegments() {
		if s != nil {
			segs.set(s.GetKey(), c.compileSegment(s, nil))
		}
	}
	if flags.t.n != len(next.GetFlags()) || segs.t.n != len(next.GetSegments()) {
		return compile(next, m)
	}
	cm := &Manifest{src: next, version: next.GetVersion(), flags: flags.t, segments: segs.t, keys: m.keys}
	if structural {
		cm.keys = make([]string, len(next.GetFlags()))
		for i, f := range next.GetFlags() {
			cm.keys[i] = f.GetKey()
		}
	}
	return cm, nil
}
