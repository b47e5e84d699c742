// Package streamload is the evaluator's streaming load generator: it starts a
// real control plane (SQLite) and one evaluator as child processes, opens N
// streams mixed as users open them (browsers on /v1/sse with a client key and
// a context, server SDKs on /v1/stream NDJSON and gRPC StreamManifest), holds
// them with heartbeats, publishes flag changes through the control plane's
// admin API and checks that every stream received every change. It reports the
// evaluator's memory per stream, goroutines, idle CPU, the time to accept all
// streams and change-to-receipt latency, then closes everything and checks the
// evaluator's goroutines return to their level before (no leak).
//
// Everything runs on 127.0.0.x; connections are spread over source addresses
// 127.0.0.2, 127.0.0.3, ... The generator raises its RLIMIT_NOFILE to the hard
// limit and the evaluator inherits it: one process cannot hold more TCP
// connections than that limit, so beyond it streams share connections
// (HTTP/2 and gRPC multiplexing, as behind an L7 proxy; Config.PerConn).
package streamload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// Config is one run.
type Config struct {
	// N is the number of streams.
	N int
	// SSE, NDJSON and GRPC are the shares of each kind (normalized).
	SSE, NDJSON, GRPC float64
	// PerConn is the streams per TCP connection (0: 1, or more when N
	// connections would not fit under the file limit).
	PerConn int
	// Contexts is the number of distinct SSE contexts (users).
	Contexts int
	// Flags is the number of client-visible flags in the environment.
	Flags int
	// Hold is how long every stream is held open before the changes.
	Hold time.Duration
	// Heartbeat is the evaluator's FLAGFORGE_STREAM_HEARTBEAT.
	Heartbeat time.Duration
	// Changes is the number of flag changes published.
	Changes int
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Bin, when set, is a directory holding prebuilt flagforge-controlplane and
	// flagforge-evaluator binaries (else both are built from the repository).
	Bin string
	// EvaluatorEnv is added to the evaluator's environment (FLAGFORGE_...=...).
	EvaluatorEnv []string
	// Profiles, when set, is a directory where the evaluator's heap and
	// goroutine profiles are saved at the end of the hold.
	Profiles string
	// Log receives progress lines (nil: os.Stderr).
	Log io.Writer
}

func (c *Config) defaults() {
	if c.N <= 0 {
		c.N = 1000
	}
	if c.SSE+c.NDJSON+c.GRPC <= 0 {
		c.SSE, c.NDJSON, c.GRPC = 0.8, 0.1, 0.1
	}
	if c.Contexts <= 0 {
		c.Contexts = 1000
	}
	if c.Flags <= 0 {
		c.Flags = 20
	}
	if c.Hold <= 0 {
		c.Hold = 2 * time.Minute
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.Changes <= 0 {
		c.Changes = 5
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = os.Stderr
	}
}

// Report is what a run measured.
type Report struct {
	N, Conns, PerConn                 int
	SSE, NDJSON, GRPC                 int
	FileLimit                         uint64
	Accept                            time.Duration
	RSSBefore, RSSAfter               float64 // bytes
	HeapBefore, HeapAfter             float64 // heap in use after forced GC
	StackBefore, StackAfter           float64
	GoroutinesBefore, GoroutinesAfter float64
	GoroutinesClosed                  float64 // after every stream closed
	IdleCPU                           float64 // cores (CPU seconds per second) during the hold
	Hold                              time.Duration
	MinHeartbeats                     int
	P50, P99, Max                     time.Duration
	PerChange                         []time.Duration // last receipt of each change
	LoadBefore, LoadAfter             string
	Retries                           int64 // opening attempts repeated
}

// BytesPerStream is the evaluator's RSS growth per stream.
func (r *Report) BytesPerStream() float64 { return (r.RSSAfter - r.RSSBefore) / float64(r.N) }

// HeapPerStream is the evaluator's heap growth per stream.
func (r *Report) HeapPerStream() float64 { return (r.HeapAfter - r.HeapBefore) / float64(r.N) }

// String is the report as printed.
func (r *Report) String() string {
	kb := func(b float64) string { return fmt.Sprintf("%.1f KB", b/1000) }
	mib := func(b float64) string { return fmt.Sprintf("%.0f MiB", b/(1<<20)) }
	s := fmt.Sprintf("streams %d (sse %d, ndjson %d, grpc %d) over %d TCP connections (%d streams per connection; RLIMIT_NOFILE %d)\n",
		r.N, r.SSE, r.NDJSON, r.GRPC, r.Conns, r.PerConn, r.FileLimit)
	s += fmt.Sprintf("accept: all %d streams holding their first state %s after the first dial (%d opening attempts repeated)\n", r.N, r.Accept.Round(time.Millisecond), r.Retries)
	s += fmt.Sprintf("evaluator RSS %s -> %s: %s per stream (all-in)\n", mib(r.RSSBefore), mib(r.RSSAfter), kb(r.BytesPerStream()))
	s += fmt.Sprintf("evaluator heap in use (after forced GC) %s -> %s: %s per stream; goroutine stacks %s -> %s: %s per stream\n",
		mib(r.HeapBefore), mib(r.HeapAfter), kb(r.HeapPerStream()), mib(r.StackBefore), mib(r.StackAfter), kb((r.StackAfter-r.StackBefore)/float64(r.N)))
	s += fmt.Sprintf("goroutines %.0f -> %.0f: %.2f per stream; %.0f after every stream closed\n",
		r.GoroutinesBefore, r.GoroutinesAfter, (r.GoroutinesAfter-r.GoroutinesBefore)/float64(r.N), r.GoroutinesClosed)
	s += fmt.Sprintf("idle CPU during the %s hold (evaluator utime+stime): %.1f%% of one core; fewest heartbeats on one stream: %d\n",
		r.Hold.Round(time.Second), r.IdleCPU*100, r.MinHeartbeats)
	s += fmt.Sprintf("change -> receipt over %d receipts: p50 %s, p99 %s, max %s; last receipt per change %v\n",
		r.N*len(r.PerChange), r.P50.Round(time.Millisecond), r.P99.Round(time.Millisecond), r.Max.Round(time.Millisecond), roundAll(r.PerChange))
	s += fmt.Sprintf("load average: before %s, after %s\n", r.LoadBefore, r.LoadAfter)
	return s
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// Run performs one run. The report is returned with the error when the run got
// far enough to measure something.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logf := func(format string, args ...any) {
		_, _ = fmt.Fprintf(cfg.Log, "%s streams: "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
	limit, err := RaiseFileLimit()
	if err != nil {
		return nil, fmt.Errorf("raising RLIMIT_NOFILE: %w", err)
	}
	r := &Report{N: cfg.N, FileLimit: limit, Hold: cfg.Hold, LoadBefore: loadAverage()}
	total := cfg.SSE + cfg.NDJSON + cfg.GRPC
	r.NDJSON = int(math.Round(float64(cfg.N) * cfg.NDJSON / total))
	r.GRPC = int(math.Round(float64(cfg.N) * cfg.GRPC / total))
	r.SSE = cfg.N - r.NDJSON - r.GRPC
	// Each side holds one descriptor per connection; keep 2,000 for everything else.
	r.PerConn = cfg.PerConn
	if r.PerConn <= 0 {
		r.PerConn = max(1, int(math.Ceil(float64(cfg.N)/float64(max(int(limit)-2000, 1)))))
	}
	conns := func(n int) int { return (n + r.PerConn - 1) / r.PerConn }
	r.Conns = conns(r.SSE) + conns(r.NDJSON) + conns(r.GRPC)
	if uint64(r.Conns)+1000 > limit {
		return nil, fmt.Errorf("%d connections do not fit under RLIMIT_NOFILE %d: raise PerConn", r.Conns, limit)
	}

	dir, err := os.MkdirTemp("", "flagforge-streams-")
	if err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	logf("building and starting the control plane and the evaluator (%s)", dir)
	pl, err := startPlatform(ctx, cfg, dir)
	if err != nil {
		return nil, err
	}
	defer pl.stop()
	defer func() {
		if tr := pl.ev.logs.tail(20); tr != "" {
			logf("the evaluator's last log lines:\n%s", tr)
		}
	}()
	pid := pl.ev.pid()
	logf("evaluator pid %d: HTTP %s, gRPC %s, admin (pprof) %s", pid, pl.evHTTP, pl.evGRPC, pl.evAdmin)
	before, err := pl.sample()
	if err != nil {
		return nil, err
	}
	r.RSSBefore, r.HeapBefore, r.StackBefore, r.GoroutinesBefore = before.rss, before.heap, before.stack, before.goroutines

	tr := newTracker(cfg.N, cfg.Changes)
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	var wg sync.WaitGroup
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	const perIP = 10000
	logf("opening %d streams (sse %d, ndjson %d, grpc %d) over %d connections from 127.0.0.2...", cfg.N, r.SSE, r.NDJSON, r.GRPC, r.Conns)
	start := time.Now()
	conn, idx := 0, 0
	// launch paces the opening: at most 200 streams waiting for their first state
	// (a flood of new connections on a loaded machine misses HTTP/2's 2 s
	// SETTINGS deadline).
	launch := func(s *streamState, run func()) {
		tr.streams[idx] = s
		idx++
		s.arrivals = make([]time.Time, cfg.Changes)
		for int64(idx)-tr.opened.Load() > 200 && sctx.Err() == nil && tr.firstProblem() == nil {
			time.Sleep(2 * time.Millisecond)
		}
		wg.Add(1)
		go run()
	}
	sseBase := "http://" + pl.evHTTP
	for _, k := range []struct {
		kind string
		n    int
	}{{KindSSE, r.SSE}, {KindNDJSON, r.NDJSON}, {KindGRPC, r.GRPC}} {
		for i := 0; i < k.n; i += r.PerConn {
			d := dialerFor(conn, perIP)
			conn++
			var client evaluationv1.EvaluationServiceClient
			var ht *http.Transport
			if k.kind == KindGRPC {
				c, err := newGRPCConn(pl.evGRPC, d)
				if err != nil {
					return r, err
				}
				closers = append(closers, func() { _ = c.Close() })
				client = evaluationv1.NewEvaluationServiceClient(c)
			} else {
				ht = h2cTransport(d)
				closers = append(closers, ht.CloseIdleConnections)
			}
			for j := i; j < min(i+r.PerConn, k.n); j++ {
				s := &streamState{kind: k.kind}
				switch k.kind {
				case KindSSE:
					u := sseURL(sseBase, pl.clientKey, j%cfg.Contexts)
					launch(s, func() { tr.runHTTP(sctx, &wg, ht, s, u, "") })
				case KindNDJSON:
					launch(s, func() { tr.runHTTP(sctx, &wg, ht, s, sseBase+"/v1/stream", pl.serverKey) })
				case KindGRPC:
					launch(s, func() { tr.runGRPC(sctx, &wg, client, s, pl.serverKey) })
				}
			}
		}
	}
	for waiting := true; waiting; {
		select {
		case <-tr.allOpen:
			waiting = false
		case <-ctx.Done():
			return r, fmt.Errorf("%d of %d streams open when the run timed out; first problem: %w", tr.opened.Load(), cfg.N, tr.firstProblem())
		case <-time.After(100 * time.Millisecond):
			if err := tr.firstProblem(); err != nil {
				return r, fmt.Errorf("%d of %d streams open: %w", tr.opened.Load(), cfg.N, err)
			}
		}
	}
	r.Accept = time.Since(start)
	r.Retries = tr.retries.Load()
	if err := tr.firstProblem(); err != nil {
		return r, err
	}
	logf("all %d streams open after %s; holding for %s", cfg.N, r.Accept.Round(time.Millisecond), cfg.Hold)

	// Hold: idle CPU over the hold, memory once settled.
	cpu0, _ := procCPU(pid)
	holdStart := time.Now()
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return r, ctx.Err()
	}
	cpu1, _ := procCPU(pid)
	r.IdleCPU = (cpu1 - cpu0) / time.Since(holdStart).Seconds()
	after, err := pl.sample()
	if err != nil {
		return r, err
	}
	r.RSSAfter, r.HeapAfter, r.StackAfter, r.GoroutinesAfter = after.rss, after.heap, after.stack, after.goroutines
	if cfg.Profiles != "" {
		if err := pl.saveProfiles(cfg.Profiles); err != nil {
			return r, err
		}
	}
	if err := tr.firstProblem(); err != nil {
		return r, fmt.Errorf("during the hold: %w", err)
	}
	r.MinHeartbeats = math.MaxInt
	for _, s := range tr.streams {
		r.MinHeartbeats = min(r.MinHeartbeats, int(s.heartbeats.Load()))
	}
	logf("held %s: evaluator RSS %.0f MiB (+%.1f KB per stream), idle CPU %.1f%% of a core", cfg.Hold, r.RSSAfter/(1<<20), r.BytesPerStream()/1000, r.IdleCPU*100)

	// Changes, one at a time: each waits until every stream has it.
	sent := make([]time.Time, cfg.Changes)
	for k := range cfg.Changes {
		time.Sleep(500 * time.Millisecond)
		sent[k] = time.Now()
		if err := pl.toggle(ctx, k%2 == 0); err != nil {
			return r, fmt.Errorf("change %d: %w", k+1, err)
		}
		select {
		case <-tr.all[k]:
		case <-time.After(60 * time.Second):
			return r, fmt.Errorf("change %d: %d of %d streams have it after 60s; first problem: %w", k+1, tr.received[k].Load(), cfg.N, tr.firstProblem())
		case <-ctx.Done():
			return r, ctx.Err()
		}
		logf("change %d reached all %d streams", k+1, cfg.N)
	}
	if err := tr.firstProblem(); err != nil {
		return r, err
	}
	lat := make([]time.Duration, 0, cfg.N*cfg.Changes)
	r.PerChange = make([]time.Duration, cfg.Changes)
	for _, s := range tr.streams {
		for k, a := range s.arrivals {
			d := a.Sub(sent[k])
			lat = append(lat, d)
			r.PerChange[k] = max(r.PerChange[k], d)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	r.P50, r.P99, r.Max = pct(0.50), pct(0.99), lat[len(lat)-1]

	// Close every stream; the evaluator must return to its goroutine count.
	logf("closing every stream")
	stopStreams()
	wg.Wait()
	for _, c := range closers { // the connections, once their streams ended
		c()
	}
	closers = nil
	deadline := time.Now().Add(60 * time.Second)
	for {
		m, err := pl.metrics("go_goroutines", "flagforge_evaluator_streams_open")
		if err != nil {
			return r, err
		}
		r.GoroutinesClosed = m["go_goroutines"]
		if m["flagforge_evaluator_streams_open"] == 0 && r.GoroutinesClosed <= r.GoroutinesBefore+leakSlack {
			break
		}
		if time.Now().After(deadline) {
			r.LoadAfter = loadAverage()
			return r, fmt.Errorf("goroutine leak: 60s after every stream closed the evaluator has %.0f goroutines (%.0f before the streams) and %.0f streams open",
				r.GoroutinesClosed, r.GoroutinesBefore, m["flagforge_evaluator_streams_open"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	r.LoadAfter = loadAverage()
	if r.MinHeartbeats < 1 && cfg.Hold >= 2*cfg.Heartbeat {
		return r, errors.New("a stream received no heartbeat during the hold")
	}
	return r, nil
}

// leakSlack is how many more goroutines than before the streams the evaluator
// may run once they are all closed (timers, pooled HTTP/2 writers, gRPC's own).
const leakSlack = 20

type sample struct{ rss, heap, stack, goroutines float64 }

// sample forces two GCs in the evaluator and reads its RSS, heap and stacks in
// use, and goroutines.
func (pl *platform) sample() (sample, error) {
	if err := pl.forceGC(); err != nil {
		return sample{}, err
	}
	m, err := pl.metrics("go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines")
	if err != nil {
		return sample{}, err
	}
	rss, err := procRSS(pl.ev.pid())
	if err != nil {
		return sample{}, err
	}
	return sample{rss: rss, heap: m["go_memstats_heap_inuse_bytes"], stack: m["go_memstats_stack_inuse_bytes"], goroutines: m["go_goroutines"]}, nil
}
