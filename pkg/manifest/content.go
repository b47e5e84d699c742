package manifest

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Domain-separation prefixes of format 2 digests.
const (
	entryDomain   = "flagforge.manifest.v2.entry\n"
	contentDomain = "flagforge.manifest.v2.content\n"
)

// Entry kinds: the first byte of every entry digest input.
const (
	kindFlag    byte = 'f'
	kindSegment byte = 's'
	kindSDKKey  byte = 'k'
)

// nBuckets is the number of buckets of a content digest: an update re-hashes the
// buckets it touches (about N/256 entry digests each) and the root.
const nBuckets = 256

type entry struct {
	kind   byte
	key    string
	digest [sha256.Size]byte
}

func compareEntry(a entry, kind byte, key string) int {
	return cmp.Or(cmp.Compare(a.kind, kind), strings.Compare(a.key, key))
}

type bucket struct {
	entries []entry // sorted by (kind, key), unique
	sum     [sha256.Size]byte
}

var emptyBucket = &bucket{sum: sha256.Sum256(nil)}

// Content is the digest state of a manifest's flags, segments and SDK keys (format
// 2): 256 buckets by FNV-1a-32(kind || key) & 0xff, each the SHA-256 of its entries
// sorted by (kind, key) as (kind, uvarint len(key), key, entry digest); the digest is
// SHA-256(contentDomain || the 256 bucket digests). An entry digest is
// SHA-256(entryDomain || kind || deterministic protobuf of the entry).
//
// A Content is immutable: with returns a new one sharing the buckets it does not
// touch, so updating one entry costs one bucket (N/256 entries) and the root.
type Content struct {
	buckets [nBuckets]*bucket
	root    [sha256.Size]byte
}

// Digest is the content digest (ManifestHeader.content_digest).
func (c *Content) Digest() []byte { return c.root[:] }

func bucketOf(kind byte, key string) int {
	const offset, prime = 2166136261, 16777619
	h := uint32(offset)
	h = (h ^ uint32(kind)) * prime
	for i := 0; i < len(key); i++ {
		h = (h ^ uint32(key[i])) * prime
	}
	return int(h & (nBuckets - 1))
}

func entryDigest(kind byte, m proto.Message) ([sha256.Size]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("manifest: encoding entry: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(entryDomain))
	h.Write([]byte{kind})
	h.Write(b)
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out, nil
}

func (b *bucket) rehash() {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	for _, e := range b.entries {
		h.Write([]byte{e.kind})
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(e.key)))])
		h.Write([]byte(e.key))
		h.Write(e.digest[:])
	}
	h.Sum(b.sum[:0])
}

func (c *Content) rehashRoot() {
	h := sha256.New()
	h.Write([]byte(contentDomain))
	for _, b := range c.buckets {
		h.Write(b.sum[:])
	}
	h.Sum(c.root[:0])
}

// op is one change of a content: an upsert (msg set) or a deletion.
type op struct {
	kind byte
	key  string
	msg  proto.Message // nil: delete
}

// NewContent computes the content digests of m (O(N)). It fails with ErrMalformed
// when two flags, segments or SDK keys share a key (id).
func NewContent(m *manifestv1.Manifest) (*Content, error) {
	ops := make([]op, 0, len(m.GetFlags())+len(m.GetSegments())+len(m.GetSdkKeys()))
	for _, f := range m.GetFlags() {
		ops = append(ops, op{kindFlag, f.GetKey(), f})
	}
	for _, s := range m.GetSegments() {
		ops = append(ops, op{kindSegment, s.GetKey(), s})
	}
	for _, k := range m.GetSdkKeys() {
		ops = append(ops, op{kindSDKKey, k.GetId(), k})
	}
	c := &Content{}
	for i := range c.buckets {
		c.buckets[i] = emptyBucket
	}
	for _, o := range ops {
		d, err := entryDigest(o.kind, o.msg)
		if err != nil {
			return nil, err
		}
		i := bucketOf(o.kind, o.key)
		if c.buckets[i] == emptyBucket {
			c.buckets[i] = &bucket{}
		}
		c.buckets[i].entries = append(c.buckets[i].entries, entry{kind: o.kind, key: o.key, digest: d})
	}
	for _, b := range c.buckets {
		if b == emptyBucket {
			continue
		}
		slices.SortFunc(b.entries, func(x, y entry) int { return compareEntry(x, y.kind, y.key) })
		for j := 1; j < len(b.entries); j++ {
			if compareEntry(b.entries[j-1], b.entries[j].kind, b.entries[j].key) == 0 {
				return nil, fmt.Errorf("%w: two %ss with key %q", ErrMalformed, kindName(b.entries[j].kind), b.entries[j].key)
			}
		}
		b.rehash()
	}
	c.rehashRoot()
	return c, nil
}

// with applies ops (at most one per (kind, key)) and returns the new content.
// Deleting a missing entry is ErrMalformed.
func (c *Content) with(ops []op) (*Content, error) {
	next := &Content{buckets: c.buckets}
	touched := map[int]*bucket{}
	for _, o := range ops {
		i := bucketOf(o.kind, o.key)
		b := touched[i]
		if b == nil {
			b = &bucket{entries: slices.Clone(c.buckets[i].entries)}
			touched[i] = b
			next.buckets[i] = b
		}
		pos, found := slices.BinarySearchFunc(b.entries, o, func(e entry, o op) int { return compareEntry(e, o.kind, o.key) })
		switch {
		case o.msg == nil && !found:
			return nil, fmt.Errorf("%w: deleting %s %q, which is not there", ErrMalformed, kindName(o.kind), o.key)
		case o.msg == nil:
			b.entries = slices.Delete(b.entries, pos, pos+1)
			continue
		}
		d, err := entryDigest(o.kind, o.msg)
		if err != nil {
			return nil, err
		}
		if found {
			b.entries[pos].digest = d
		} else {
			b.entries = slices.Insert(b.entries, pos, entry{kind: o.kind, key: o.key, digest: d})
		}
	}
	for _, b := range touched {
		b.rehash()
	}
	next.rehashRoot()
	return next, nil
}

func kindName(k byte) string {
	switch k {
	case kindFlag:
		return "flag"
	case kindSegment:
		return "segment"
	default:
		return "SDK key"
	}
}
