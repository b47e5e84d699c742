package sdk

import (
	"context"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/seen"
)

// maxReportCounts is the evaluator's bound on one ReportEvaluations call.
const maxReportCounts = 10_000

// maxReportContexts is the evaluator's bound on the contexts of one call.
const maxReportContexts = 1_000

// counters is flag key -> variant ("" for errors) -> counter. A table is
// immutable once published with a snapshot; the counters themselves are atomics
// shared from one manifest version to the next, so a swap loses nothing.
type counters map[string]map[string]*counter

// counter counts the evaluations of one flag and variant, and the errors: for
// variant "", evaluations that failed; for a variant, errors the application
// reported against it (Client.ReportError).
type counter struct {
	n, errors atomic.Int64
}

type counterKey struct{ flag, variant string }

// usage counts evaluations per flag and variant and queues reports. Counting is
// two map lookups and an atomic add: no lock, no allocation. Memory is bounded by
// max: at most max distinct counters, and at most max counts waiting to be sent.
type usage struct {
	max     int
	dropped atomic.Int64 // evaluations not reported because a bound was hit

	// contexts samples evaluated contexts (nil: none); env is its one
	// environment's handle (nil: none).
	contexts *seen.Sampler
	env      *seen.Env

	mu       sync.Mutex
	all      map[counterKey]*counter
	live     map[counterKey]bool // counters of the current manifest
	pending  [][]*evaluationv1.EvaluationCount
	pendingN int
}

func newUsage(maxCounts int) *usage {
	return &usage{max: maxCounts, all: map[counterKey]*counter{}}
}

// count adds one evaluation of flag serving variant; variant "" is an
// evaluation that failed, counted as an error too.
func (u *usage) count(cs counters, flag, variant string) {
	if ctr := cs[flag][variant]; ctr != nil {
		ctr.n.Add(1)
		if variant == "" {
			ctr.errors.Add(1)
		}
		return
	}
	u.dropped.Add(1)
}

// fail adds one error of flag and variant reported by the application; false
// when the manifest has no such flag and variant.
func (u *usage) fail(cs counters, flag, variant string) bool {
	if ctr := cs[flag][variant]; ctr != nil {
		ctr.errors.Add(1)
		return true
	}
	return false
}

// build makes the counter table of m, reusing the counters of flags and variants
// already known. Past max distinct counters, new ones are not created (their
// evaluations are dropped and counted).
func (u *usage) build(m *manifestv1.Manifest) counters {
	u.mu.Lock()
	defer u.mu.Unlock()
	cs := make(counters, len(m.GetFlags()))
	u.live = make(map[counterKey]bool, len(u.live))
	add := func(flag, variant string) {
		k := counterKey{flag, variant}
		ctr := u.all[k]
		if ctr == nil {
			if len(u.all) >= u.max {
				return
			}
			ctr = new(counter)
			u.all[k] = ctr
		}
		u.live[k] = true
		vm := cs[flag]
		if vm == nil {
			vm = make(map[string]*counter, 4)
			cs[flag] = vm
		}
		vm[variant] = ctr
	}
	for _, f := range m.GetFlags() {
		add(f.GetKey(), "")
		for _, v := range f.GetVariants() {
			add(f.GetKey(), v.GetKey())
		}
	}
	return cs
}

// take moves the counts out of the counters into a batch stamped with minute, and
// forgets idle counters of flags no longer in the manifest.
func (u *usage) take(minute time.Time) []*evaluationv1.EvaluationCount {
	u.mu.Lock()
	defer u.mu.Unlock()
	ts := timestamppb.New(minute.UTC().Truncate(time.Minute))
	var out []*evaluationv1.EvaluationCount
	for k, ctr := range u.all {
		n, e := ctr.n.Swap(0), ctr.errors.Swap(0)
		if n > 0 || e > 0 {
			out = append(out, &evaluationv1.EvaluationCount{FlagKey: k.flag, Variant: k.variant, Minute: ts, Count: n, Errors: e})
		} else if !u.live[k] {
			delete(u.all, k)
		}
	}
	return out
}

// enqueue queues batch for sending (in calls of at most maxReportCounts counts);
// past max queued counts the oldest batches are dropped and counted.
func (u *usage) enqueue(batch []*evaluationv1.EvaluationCount) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), maxReportCounts)
		u.pending = append(u.pending, batch[:n])
		u.pendingN += n
		batch = batch[n:]
	}
	for u.pendingN > u.max && len(u.pending) > 0 {
		old := u.pending[0]
		u.pending = u.pending[1:]
		u.pendingN -= len(old)
		for _, c := range old {
			u.dropped.Add(c.GetCount())
		}
	}
}

// flush sends the queued batches in order until one fails (it stays queued).
func (u *usage) flush(ctx context.Context, send func(context.Context, []*evaluationv1.EvaluationCount) error) error {
	for {
		u.mu.Lock()
		if len(u.pending) == 0 {
			u.mu.Unlock()
			return nil
		}
		b := u.pending[0]
		u.mu.Unlock()
		if err := send(ctx, b); err != nil {
			return err
		}
		u.mu.Lock()
		if len(u.pending) > 0 && &u.pending[0][0] == &b[0] {
			u.pending = u.pending[1:]
			u.pendingN -= len(b)
		}
		u.mu.Unlock()
	}
}

// report sends the counts every UsageInterval, and once more on Close.
func (c *Client) report(ctx context.Context) {
	t := time.NewTicker(c.cfg.UsageInterval)
	defer t.Stop()
	window := c.cfg.Now()
	send := func(ctx context.Context) {
		now := c.cfg.Now()
		c.usage.enqueue(c.usage.take(window))
		window = now
		select {
		case <-c.fatalCh:
			return // the key is refused: nothing will be accepted
		default:
		}
		if err := c.usage.flush(ctx, c.sendUsage); err != nil {
			c.log.Warn("evaluation counts not reported; retrying later", "error", err)
		}
		c.usage.env.Reopen()
		if err := c.sendContexts(ctx); err != nil {
			c.log.Warn("sampled contexts not reported (dropped: they are a best-effort sample)", "error", err)
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			send(fctx)
			cancel()
			return
		case <-t.C:
			fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			send(fctx)
			cancel()
		}
	}
}

func (c *Client) sendUsage(ctx context.Context, counts []*evaluationv1.EvaluationCount) error {
	_, err := c.api.ReportEvaluations(c.authorize(ctx), &evaluationv1.ReportEvaluationsRequest{Counts: counts})
	return err
}

// sampleEnv is the sampler's key: a client serves one environment.
const sampleEnv = ""

// sample offers ctx to the seen-context sample. Once the sample is full it costs
// one atomic load (no clock read): the report loop reopens it every
// UsageInterval, so a minute's bound holds and sampling resumes at the next
// report after the minute ends.
func (u *usage) sample(m *manifestv1.Manifest, ctx *Context, clock func() time.Time) {
	if u.env.Closed() || ctx == nil {
		return
	}
	now := clock()
	minute := now.Unix() / 60 * 60
	if !u.env.Want(minute) {
		return
	}
	u.env.Add(minute, now, m.GetPrivateAttributes(), ctx.Attributes())
}

// sendContexts sends the sampled contexts (private attributes already removed)
// in calls of at most maxReportContexts.
func (c *Client) sendContexts(ctx context.Context) error {
	var out []*evaluationv1.SampledContext
	for _, s := range c.usage.contexts.Take()[sampleEnv] {
		st, err := structpb.NewStruct(maps.Clone(s.Attributes))
		if err != nil {
			continue
		}
		out = append(out, &evaluationv1.SampledContext{Attributes: st, Time: timestamppb.New(s.Time)})
	}
	for len(out) > 0 {
		n := min(len(out), maxReportContexts)
		if _, err := c.api.ReportEvaluations(c.authorize(ctx), &evaluationv1.ReportEvaluationsRequest{Contexts: out[:n]}); err != nil {
			return err
		}
		out = out[n:]
	}
	return nil
}
