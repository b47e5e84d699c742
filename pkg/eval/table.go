package eval

import (
	"hash/maphash"
	"maps"
	"math/bits"
)

// tableSeed hashes keys to buckets; tables live in one process only.
var tableSeed = maphash.MakeSeed()

// table is an immutable map from key to compiled flag or segment, split into a
// power-of-two number of buckets (about 32 entries each) so that a manifest built
// from another by a delta copies only the buckets the delta touches: Update costs
// what it changes, not the size of the environment.
type table[T any] struct {
	buckets []map[string]T // nil maps for empty buckets
	mask    uint64
	n       int
}

// newTable returns an empty table sized for about n entries.
func newTable[T any](n int) table[T] {
	nb := 1
	if n > 32 {
		nb = 1 << bits.Len(uint(n/32))
	}
	nb = min(nb, 4096)
	return table[T]{buckets: make([]map[string]T, nb), mask: uint64(nb - 1)}
}

func (t *table[T]) get(key string) (T, bool) {
	b := t.buckets[maphash.String(tableSeed, key)&t.mask]
	v, ok := b[key]
	return v, ok
}

// set stores v under key in place: only for a table under construction.
func (t *table[T]) set(key string, v T) {
	i := maphash.String(tableSeed, key) & t.mask
	if t.buckets[i] == nil {
		t.buckets[i] = map[string]T{}
	}
	if _, ok := t.buckets[i][key]; !ok {
		t.n++
	}
	t.buckets[i][key] = v
}

// editor changes a copy of a table, cloning each bucket on its first change, so
// the original stays untouched.
type editor[T any] struct {
	t      table[T]
	cloned map[uint64]bool
}

func (t table[T]) edit() *editor[T] {
	return &editor[T]{t: table[T]{buckets: append([]map[string]T(nil), t.buckets...), mask: t.mask, n: t.n}, cloned: map[uint64]bool{}}
}

func (e *editor[T]) bucket(key string) map[string]T {
	i := maphash.String(tableSeed, key) & e.t.mask
	if !e.cloned[i] {
		e.cloned[i] = true
		if b := maps.Clone(e.t.buckets[i]); b != nil {
			e.t.buckets[i] = b
		} else {
			e.t.buckets[i] = map[string]T{}
		}
	}
	return e.t.buckets[i]
}

func (e *editor[T]) set(key string, v T) (added bool) {
	b := e.bucket(key)
	_, had := b[key]
	b[key] = v
	if !had {
		e.t.n++
	}
	return !had
}

func (e *editor[T]) del(key string) (removed bool) {
	if _, ok := e.t.get(key); !ok {
		return false
	}
	delete(e.bucket(key), key)
	e.t.n--
	return true
}
