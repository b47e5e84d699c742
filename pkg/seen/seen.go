// Package seen samples the evaluation contexts a process evaluates, for impact
// previews (docs/release-safety.md, "Seen contexts"). The evaluator and the Go SDK
// use it on their evaluation paths; the control plane uses Redact and Canonical on
// what it receives.
//
// The contract:
//   - Bounded: per environment and minute at most Limit distinct contexts are kept
//     and at most 10×Limit offers are examined; beyond either, the minute is
//     closed and Want answers false with two atomic loads and no lock, so a full
//     reservoir costs (almost) nothing on the hot path. Unreported samples are
//     bounded too (MaxPending per environment; newer ones are dropped beyond it).
//   - Private: Add removes the private attributes (Redact) before anything is
//     stored, so they never reach Take, hence never leave the process.
//   - Deduplicated: within a minute a context is kept once (by Digest of its
//     redacted canonical JSON); the control plane deduplicates across minutes.
//   - The sample is the first distinct contexts of each minute, not a uniform
//     reservoir: a uniform one would cost a random draw per evaluation.
package seen

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultLimit is the number of contexts kept per environment and minute when
// the configured limit is 0.
const DefaultLimit = 100

// Sample is one sampled context, private attributes removed.
type Sample struct {
	Attributes map[string]any
	Time       time.Time
}

// Sampler keeps the bounded samples of every environment. The zero value is not
// usable; a nil *Sampler samples nothing.
type Sampler struct {
	limit, maxOffers, maxPending int
	envs                         sync.Map // environment -> *envSample
}

type envSample struct {
	// minute and closed are read without the lock (Want); written under it.
	minute atomic.Int64
	closed atomic.Bool

	mu      sync.Mutex
	offers  int
	digests map[string]struct{}
	pending []Sample
}

// New returns a sampler keeping at most limit contexts per environment and
// minute (0: DefaultLimit; < 0: none, Want is always false).
func New(limit int) *Sampler {
	if limit == 0 {
		limit = DefaultLimit
	}
	if limit < 0 {
		return nil
	}
	return &Sampler{limit: limit, maxOffers: 10 * limit, maxPending: 60 * limit}
}

// Limit is the number of contexts kept per environment and minute.
func (s *Sampler) Limit() int {
	if s == nil {
		return 0
	}
	return s.limit
}

func (s *Sampler) env(env string) *envSample {
	if v, ok := s.envs.Load(env); ok {
		return v.(*envSample)
	}
	v, _ := s.envs.LoadOrStore(env, &envSample{digests: map[string]struct{}{}})
	return v.(*envSample)
}

// Want reports whether a context evaluated in env during minute (Unix seconds
// of its start) may still be sampled. It is the hot-path check: call Add only
// when it is true.
func (s *Sampler) Want(env string, minute int64) bool {
	if s == nil {
		return false
	}
	return s.env(env).want(minute)
}

// Add offers one context: it is redacted, digested and kept when the minute's
// bounds allow and it is new this minute. attrs is not modified or retained
// (the sample holds a redacted copy; unchanged nested values are shared, so
// callers must not mutate them later, as eval.Context never does).
func (s *Sampler) Add(env string, minute int64, now time.Time, private []string, attrs map[string]any) {
	if s == nil || len(attrs) == 0 {
		return
	}
	s.env(env).add(s, minute, now, private, attrs)
}

// Env is the sample of one environment, for a caller that evaluates in one
// environment only (the Go SDK): it skips the lookup by name. A nil *Env
// samples nothing.
type Env struct {
	s *Sampler
	e *envSample
}

// Env returns the sample of env (nil for a nil sampler).
func (s *Sampler) Env(env string) *Env {
	if s == nil {
		return nil
	}
	return &Env{s: s, e: s.env(env)}
}

// Want is Sampler.Want for this environment.
func (h *Env) Want(minute int64) bool { return h != nil && h.e.want(minute) }

// Closed reports whether the sample was closed (full, or offered ten times the
// bound) in the last minute it saw: one atomic load and no clock read, for
// callers on a hot path that reopen it periodically (Reopen).
func (h *Env) Closed() bool { return h == nil || h.e.closed.Load() }

// Reopen lets the next Add look at its minute again: the bound of a minute still
// holds (a full minute closes again at once), a new minute starts empty.
func (h *Env) Reopen() {
	if h == nil {
		return
	}
	h.e.mu.Lock()
	h.e.closed.Store(false)
	h.e.mu.Unlock()
}

// Add is Sampler.Add for this environment.
func (h *Env) Add(minute int64, now time.Time, private []string, attrs map[string]any) {
	if h != nil && len(attrs) > 0 {
		h.e.add(h.s, minute, now, private, attrs)
	}
}

func (e *envSample) want(minute int64) bool {
	return e.minute.Load() != minute || !e.closed.Load()
}

func (e *envSample) add(s *Sampler, minute int64, now time.Time, private []string, attrs map[string]any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.minute.Load() != minute {
		if minute < e.minute.Load() {
			return // a late offer for a past minute
		}
		e.minute.Store(minute)
		e.closed.Store(false)
		e.offers = 0
		clear(e.digests)
	}
	if e.closed.Load() {
		return
	}
	e.offers++
	if e.offers >= s.maxOffers {
		e.closed.Store(true)
	}
	if e.offers > s.maxOffers || len(e.digests) >= s.limit || len(e.pending) >= s.maxPending {
		e.closed.Store(true)
		return
	}
	red := Redact(attrs, private)
	_, digest, err := Canonical(red)
	if err != nil {
		return
	}
	if _, dup := e.digests[digest]; dup {
		return
	}
	e.digests[digest] = struct{}{}
	red = maps.Clone(red) // never retain the caller's top-level map
	e.pending = append(e.pending, Sample{Attributes: red, Time: now.UTC()})
	if len(e.digests) >= s.limit {
		e.closed.Store(true)
	}
}

// Take moves the unreported samples out, by environment.
func (s *Sampler) Take() map[string][]Sample {
	out := map[string][]Sample{}
	if s == nil {
		return out
	}
	s.envs.Range(func(k, v any) bool {
		e := v.(*envSample)
		e.mu.Lock()
		if len(e.pending) > 0 {
			out[k.(string)] = e.pending
			e.pending = nil
		}
		e.mu.Unlock()
		return true
	})
	return out
}

// Redact returns attrs without the private attributes. A name is removed as a
// top-level attribute and, when dotted ("address.street"), as the path into
// nested objects the engine would follow. attrs is not modified: the maps on a
// removed path are copied, the result shares everything else (attrs itself when
// nothing is removed).
func Redact(attrs map[string]any, private []string) map[string]any {
	for _, p := range private {
		attrs, _ = without(attrs, p)
	}
	return attrs
}

// without removes path from m, copying m when something is removed.
func without(m map[string]any, path string) (map[string]any, bool) {
	changed := false
	if _, ok := m[path]; ok {
		m = maps.Clone(m)
		delete(m, path)
		changed = true
	}
	for i := strings.IndexByte(path, '.'); i >= 0; {
		head, rest := path[:i], path[i+1:]
		if sub, ok := m[head].(map[string]any); ok {
			if nsub, ch := without(sub, rest); ch {
				if !changed {
					m = maps.Clone(m)
					changed = true
				}
				m[head] = nsub
			}
		}
		j := strings.IndexByte(path[i+1:], '.')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return m, changed
}

// Canonical is attrs as canonical JSON (object keys sorted) and the SHA-256 (hex)
// of that JSON: a context's identity.
func Canonical(attrs map[string]any) (canonical []byte, digest string, err error) {
	b, err := json.Marshal(attrs)
	if err != nil {
		return nil, "", err
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:]), nil
}
