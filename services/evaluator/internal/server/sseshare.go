package server

import (
	"encoding/json"
	"strconv"
	"sync"

	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// sseView is what /v1/sse sends for one context at one manifest version: the
// evaluated client-visible flags and their encoded events. Immutable once built;
// every stream of the same environment and context shares it, so a change is
// evaluated and encoded once per distinct context, not once per stream.
type sseView struct {
	version uint64
	results map[string]sseResult
	// flags is the "flags" event (the first event of a stream).
	flags []byte
	// from is the version changes starts from (0: none, the first view).
	from uint64
	// changes is the "changes" event from the view of version from to this one
	// (nil: nothing changed for this context).
	changes []byte
}

// sseAudience is the streams of one environment and one context.
type sseAudience struct {
	key  sseKey
	refs int // guarded by sseShare.mu
	mu   sync.Mutex
	cur  *sseView
}

type sseKey struct{ target, context string }

// sseShare holds the audiences with at least one open stream. The zero value
// is ready to use.
type sseShare struct {
	mu sync.Mutex
	m  map[sseKey]*sseAudience
}

// join returns the audience of (target, raw context), counting the caller in;
// the caller calls leave when its stream ends.
func (sh *sseShare) join(target, context string) *sseAudience {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.m == nil {
		sh.m = map[sseKey]*sseAudience{}
	}
	k := sseKey{target, context}
	a := sh.m[k]
	if a == nil {
		a = &sseAudience{key: k}
		sh.m[k] = a
	}
	a.refs++
	return a
}

func (sh *sseShare) leave(a *sseAudience) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if a.refs--; a.refs <= 0 {
		delete(sh.m, a.key)
	}
}

// view returns the audience's view of env, evaluating c (once for every stream
// of the audience) when the audience has none of env's version yet.
func (s *Service) sseView(a *sseAudience, env *holder.Env, c *engine.Context) (*sseView, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cur != nil && a.cur.version == env.Version() {
		return a.cur, nil
	}
	v := &sseView{version: env.Version(), results: s.evaluateVisible(a.key.target, env, c)}
	var err error
	if v.flags, err = encodeEvent("flags", v.version, v.results); err != nil {
		return nil, err
	}
	if prev := a.cur; prev != nil {
		v.from = prev.version
		if d := sseDiff(prev.results, v.results); len(d) > 0 {
			if v.changes, err = encodeEvent("changes", v.version, d); err != nil {
				return nil, err
			}
		}
	}
	a.cur = v
	return v, nil
}

// changesSince is the "changes" event that brings a stream holding last to v
// (nil: nothing changed): the shared one when last is the view v was diffed
// from, else one computed for this stream.
func changesSince(last, v *sseView) ([]byte, error) {
	if v.from == last.version && v.from != 0 {
		return v.changes, nil
	}
	d := sseDiff(last.results, v.results)
	if len(d) == 0 {
		return nil, nil
	}
	return encodeEvent("changes", v.version, d)
}

// sseDiff is the flags whose value or variant differ from last to next (a flag
// gone or no longer client-visible maps to nil).
func sseDiff(last, next map[string]sseResult) map[string]*sseResult {
	changes := map[string]*sseResult{}
	for k, v := range next {
		if old, ok := last[k]; !ok || !old.same(v) {
			changes[k] = &v
		}
	}
	for k := range last {
		if _, ok := next[k]; !ok {
			changes[k] = nil
		}
	}
	return changes
}

// encodeEvent is one server-sent event: event name, id (0: none), JSON data.
func encodeEvent(event string, id uint64, data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(event)+40)
	out = append(out, "event: "...)
	out = append(out, event...)
	out = append(out, '\n')
	if id > 0 {
		out = append(out, "id: "...)
		out = strconv.AppendUint(out, id, 10)
		out = append(out, '\n')
	}
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\n"...), nil
}
