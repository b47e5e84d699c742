// Package usage counts evaluations (and errors: evaluations that failed, errors
// SDKs reported against a variant) per environment, flag, variant and minute,
// samples the contexts evaluated (pkg/seen: bounded per environment and minute,
// private attributes removed), and reports both to the control plane
// (flagforge.sync.v1 SyncService/ReportUsage) in the background.
//
// The contract:
//   - Add is cheap and never blocks on I/O: sharded maps under read locks with an
//     atomic add per evaluation; a new (environment, flag, variant, minute) takes a
//     shard's write lock once. A nil *Counter counts nothing.
//   - Memory is bounded: at most MaxEntries distinct counters and MaxPending unsent
//     batches; beyond either bound evaluations are dropped and counted
//     (flagforge_evaluator_usage_dropped_total), never queued without limit.
//   - Reporting is best effort and never on the request path: every Interval the
//     counts are moved into one batch per environment with a unique batch id; a
//     batch that fails is retried with the same id (the control plane counts a
//     batch id once), oldest first, until MaxPending forces the oldest out.
package usage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"hash/maphash"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/seen"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
)

const shardCount = 64

// key identifies one counter.
type key struct {
	minute  int64 // Unix seconds of the minute's start
	env     string
	flag    string
	variant string
}

// cell is one counter: evaluations and errors.
type cell struct {
	n, errors atomic.Int64
}

type shard struct {
	mu sync.RWMutex
	m  map[key]*cell
}

// Counter holds the counts not yet reported.
type Counter struct {
	seed       maphash.Seed
	shards     [shardCount]shard
	entries    atomic.Int64
	maxEntries int64
	dropped    prometheus.Counter
	// contexts samples evaluated contexts (nil: none; see SampleContexts).
	contexts *seen.Sampler
}

// SampleContexts makes the counter also sample the contexts evaluated: at most
// limit distinct contexts per environment and minute (0: seen.DefaultLimit; < 0:
// none). Call it before the counter is shared.
func (c *Counter) SampleContexts(limit int) { c.contexts = seen.New(limit) }

// WantContext is the hot-path check before SampleContext: false (two atomic
// loads) once the environment's reservoir for minute is full.
func (c *Counter) WantContext(env string, minute int64) bool {
	return c != nil && c.contexts.Want(env, minute)
}

// SampleContext offers one evaluated context of env: private attributes are
// removed before it is kept (see seen.Sampler.Add).
func (c *Counter) SampleContext(env string, minute int64, now time.Time, private []string, attrs map[string]any) {
	if c != nil {
		c.contexts.Add(env, minute, now, private, attrs)
	}
}

// NewCounter returns a counter holding at most maxEntries distinct counters
// (default 100,000). reg receives its metrics (nil: none registered).
func NewCounter(maxEntries int, reg prometheus.Registerer) (*Counter, error) {
	if maxEntries <= 0 {
		maxEntries = 100_000
	}
	c := &Counter{seed: maphash.MakeSeed(), maxEntries: int64(maxEntries),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagforge_evaluator_usage_dropped_total",
			Help: "Evaluations not reported because a usage bound was hit (too many distinct counters, or the control plane unreachable for long).",
		})}
	for i := range c.shards {
		c.shards[i].m = map[key]*cell{}
	}
	if reg != nil {
		if err := reg.Register(c.dropped); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Minute is the start of now's minute in Unix seconds.
func Minute(now time.Time) int64 { return now.Unix() / 60 * 60 }

// Add counts n evaluations of flag serving variant in env during minute (see
// Minute).
func (c *Counter) Add(env, flag, variant string, minute, n int64) {
	c.AddWithErrors(env, flag, variant, minute, n, 0)
}

// AddWithErrors counts n evaluations and errs errors of flag and variant in env
// during minute (errors: evaluations that failed, for variant "", or errors an
// SDK reported against variant).
func (c *Counter) AddWithErrors(env, flag, variant string, minute, n, errs int64) {
	if c == nil || n < 0 || errs < 0 || n+errs == 0 {
		return
	}
	k := key{minute: minute, env: env, flag: flag, variant: variant}
	s := &c.shards[maphash.String(c.seed, flag)%shardCount]
	s.mu.RLock()
	if v := s.m[k]; v != nil {
		v.add(n, errs)
		s.mu.RUnlock()
		return
	}
	s.mu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.m[k]; v != nil {
		v.add(n, errs)
		return
	}
	if c.entries.Load() >= c.maxEntries {
		c.dropped.Add(float64(n))
		return
	}
	v := new(cell)
	v.add(n, errs)
	s.m[k] = v
	c.entries.Add(1)
}

func (v *cell) add(n, errs int64) {
	if n != 0 {
		v.n.Add(n)
	}
	if errs != 0 {
		v.errors.Add(errs)
	}
}

// take moves every count out of the counter, grouped by environment. Counters of
// minutes before the previous one that had nothing to report are removed (the hot
// path only touches the current minute).
func (c *Counter) take(now time.Time) map[string][]*evaluationv1.EvaluationCount {
	out := map[string][]*evaluationv1.EvaluationCount{}
	stale := Minute(now) - 60
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for k, v := range s.m {
			n, e := v.n.Swap(0), v.errors.Swap(0)
			if n == 0 && e == 0 {
				if k.minute < stale {
					delete(s.m, k)
					c.entries.Add(-1)
				}
				continue
			}
			out[k.env] = append(out[k.env], &evaluationv1.EvaluationCount{
				FlagKey: k.flag, Variant: k.variant, Minute: timestamppb.New(time.Unix(k.minute, 0).UTC()), Count: n, Errors: e,
			})
		}
		s.mu.Unlock()
	}
	return out
}

// Client is what the reporter needs from the control plane
// (syncv1.SyncServiceClient implements it).
type Client interface {
	ReportUsage(ctx context.Context, in *syncv1.ReportUsageRequest, opts ...grpc.CallOption) (*syncv1.ReportUsageResponse, error)
}

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Client sends the batches (required).
	Client Client
	// Interval between reports (default 1m).
	Interval time.Duration
	// Timeout of one ReportUsage call (default 10s).
	Timeout time.Duration
	// MaxPending bounds the batches kept while the control plane is unreachable
	// (default 1,000); the oldest are dropped first.
	MaxPending int
	// ReporterID identifies this evaluator (default: a random id per process).
	ReporterID string
	// Token is sent as "authorization: Bearer <token>" when set.
	Token string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the reporter's metrics (nil: none registered).
	Registerer prometheus.Registerer
}

// Reporter sends the counter's counts to the control plane.
type Reporter struct {
	cfg     ReporterConfig
	counter *Counter
	log     *slog.Logger
	seq     uint64
	pending []*syncv1.ReportUsageRequest
	batches *prometheus.CounterVec
}

// NewReporter returns a reporter of c's counts.
func NewReporter(cfg ReporterConfig, c *Counter) (*Reporter, error) {
	if cfg.Client == nil || c == nil {
		return nil, errors.New("usage: a client and a counter are required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if cfg.ReporterID == "" {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		cfg.ReporterID = "evaluator-" + hex.EncodeToString(b)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Reporter{cfg: cfg, counter: c, log: cfg.Logger.With("component", "usage"),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagforge_evaluator_usage_batches_total",
			Help: "Usage batches, by outcome: sent, failed (kept for retry), dropped (pending bound hit).",
		}, []string{"result"})}
	for _, l := range []string{"sent", "failed", "dropped"} {
		r.batches.WithLabelValues(l)
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(r.batches); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run reports every Interval until ctx ends, then makes one last attempt.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			r.Flush(fctx)
			cancel()
			return nil
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// maxContextsPerBatch bounds the sampled contexts of one batch (the control
// plane refuses more).
const maxContextsPerBatch = 10_000

// Flush moves the counts and sampled contexts into batches and sends every
// pending batch, oldest first, stopping at the first failure (kept for the next
// attempt).
func (r *Reporter) Flush(ctx context.Context) {
	counts := r.counter.take(r.cfg.Now())
	contexts := r.counter.contexts.Take()
	for env := range contexts {
		if _, ok := counts[env]; !ok {
			counts[env] = nil
		}
	}
	for env, cs := range counts {
		parts := strings.SplitN(env, "/", 3)
		if len(parts) != 3 {
			continue
		}
		r.seq++
		r.pending = append(r.pending, &syncv1.ReportUsageRequest{
			Environment: &syncv1.EnvironmentRef{Org: parts[0], Project: parts[1], Environment: parts[2]},
			Counts:      cs, ReporterId: r.cfg.ReporterID,
			BatchId:  r.cfg.ReporterID + "-" + strconv.FormatUint(r.seq, 10),
			Contexts: sampled(contexts[env]),
		})
	}
	if over := len(r.pending) - r.cfg.MaxPending; over > 0 {
		for _, b := range r.pending[:over] {
			for _, c := range b.GetCounts() {
				r.counter.dropped.Add(float64(c.GetCount()))
			}
			r.batches.WithLabelValues("dropped").Inc()
		}
		r.pending = append([]*syncv1.ReportUsageRequest(nil), r.pending[over:]...)
		r.log.Warn("usage batches dropped: control plane unreachable for long", "batches", over)
	}
	for len(r.pending) > 0 {
		cctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		if r.cfg.Token != "" {
			cctx = withToken(cctx, r.cfg.Token)
		}
		_, err := r.cfg.Client.ReportUsage(cctx, r.pending[0])
		cancel()
		if err != nil {
			r.batches.WithLabelValues("failed").Inc()
			r.log.Warn("reporting usage failed; will retry", "pending_batches", len(r.pending), "err", err)
			return
		}
		r.batches.WithLabelValues("sent").Inc()
		r.pending[0] = nil
		r.pending = r.pending[1:]
	}
}

// sampled converts samples for the wire (at most maxContextsPerBatch; samples
// that do not convert, e.g. a value JSON cannot carry, are left out).
func sampled(ss []seen.Sample) []*evaluationv1.SampledContext {
	out := make([]*evaluationv1.SampledContext, 0, min(len(ss), maxContextsPerBatch))
	for _, s := range ss {
		if len(out) == maxContextsPerBatch {
			break
		}
		st, err := structpb.NewStruct(s.Attributes)
		if err != nil {
			continue
		}
		out = append(out, &evaluationv1.SampledContext{Attributes: st, Time: timestamppb.New(s.Time)})
	}
	return out
}
