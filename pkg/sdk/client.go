package sdk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/eval"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/seen"
)

// Errors reported by the client. Match them with errors.Is.
var (
	// ErrKeyRefused: the evaluator refused the SDK key (UNAUTHENTICATED or
	// PERMISSION_DENIED, HTTP 401/403). Fatal: the client stops syncing.
	ErrKeyRefused = errors.New("sdk: the evaluator refused the SDK key")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("sdk: client closed")
)

// Client evaluates flags locally from the verified manifest of one environment and
// keeps that manifest in sync in the background. Create it with New.
type Client struct {
	cfg      Config
	log      *slog.Logger
	verifier *manifest.Verifier
	conn     *grpc.ClientConn // nil: no streaming
	api      evaluationv1.EvaluationServiceClient
	http     *http.Client
	ownHTTP  bool

	// state is what evaluations read: one atomic load, never a lock.
	state atomic.Pointer[snapshot]
	usage *usage // nil when usage is disabled

	mu       sync.Mutex // serializes manifest swaps and guards the fields below
	lastSync time.Time
	lastErr  error
	fatal    error
	mode     string
	stated   State // last state announced with an event
	// head is the version the evaluator announced as current (a stream's first
	// message, a poll answer); headKnown says one was announced. A networked client
	// is ready once it holds head.
	head      uint64
	headKnown bool

	// tlsErr is the last TLS handshake's failure (nil: none, or it succeeded
	// since); tlsFailed is closed, and replaced, at each failure (handshakeWatch).
	tlsErr    error
	tlsFailed chan struct{}

	ready     chan struct{} // closed once caught up (see caughtUpLocked)
	readyOnce sync.Once
	fatalCh   chan struct{} // closed when a fatal error stops the client
	events    *dispatcher

	cancel    context.CancelFunc
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// snapshot is one verified, compiled manifest with its usage counters.
type snapshot struct {
	m        *eval.Manifest
	src      *manifestv1.Manifest // canonical proto: what deltas and digests apply to
	ver      *manifest.Version    // the verified version src is the manifest of
	counters counters
}

// Modes of Status.Mode.
const (
	ModeOffline   = "offline"
	ModeStreaming = "streaming"
	ModePolling   = "polling"
)

// New checks cfg, loads the bootstrap manifest if any, and starts syncing in the
// background. It never waits for the network: until the first manifest, calls
// answer the caller's default with PROVIDER_NOT_READY. It fails only on an invalid
// configuration; a bootstrap manifest that does not verify is reported in Status and
// the client starts without it.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sdk: invalid configuration: %w", err)
	}
	v, err := manifest.NewVerifier(cfg.Now, cfg.TrustedKeys...)
	if err != nil {
		return nil, fmt.Errorf("sdk: %w", err)
	}
	c := &Client{
		cfg: cfg, log: cfg.Logger.With("component", "flagforge-sdk"), verifier: v,
		http: cfg.HTTPClient, mode: ModeOffline, stated: StateNotReady,
		ready: make(chan struct{}), fatalCh: make(chan struct{}), done: make(chan struct{}),
		tlsFailed: make(chan struct{}),
	}
	if !cfg.DisableUsage {
		c.usage = newUsage(cfg.MaxPendingCounts)
		c.usage.contexts = seen.New(cfg.SeenContextsPerMinute)
		c.usage.env = c.usage.contexts.Env(sampleEnv)
	}
	if cfg.Address != "" {
		creds := insecure.NewCredentials()
		if cfg.TLS != nil {
			creds = &handshakeWatch{TransportCredentials: credentials.NewTLS(cfg.TLS), c: c}
		}
		// The SDK, not the gRPC channel, decides when to reconnect (see dialer).
		opts := append(append([]grpc.DialOption{
			grpc.WithTransportCredentials(creds),
			// The evaluator enforces at least 10 s between pings.
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			// Snapshots of large environments exceed gRPC's default 4 MiB.
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(manifest.MaxMessageBytes)),
		}, newDialer(cfg.Backoff).dialOptions()...), cfg.DialOptions...)
		if cfg.LoadBalancing != "" {
			opts = append(opts, grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"`+cfg.LoadBalancing+`":{}}]}`))
		}
		if c.conn, err = grpc.NewClient(cfg.Address, opts...); err != nil {
			return nil, fmt.Errorf("sdk: Address: %w", err)
		}
		c.api = evaluationv1.NewEvaluationServiceClient(c.conn)
	}
	if cfg.HTTPURL != "" && c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.TLS != nil {
			tr.TLSClientConfig = cfg.TLS.Clone()
		}
		c.http, c.ownHTTP = &http.Client{Transport: tr}, true
	}
	c.events = newDispatcher(c.log)

	if err := c.bootstrap(); err != nil {
		c.log.Warn("bootstrap manifest refused", "error", err)
		c.setError(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.wg.Add(1)
	go func() { defer c.wg.Done(); c.housekeep(ctx) }()
	if c.conn != nil || c.http != nil && cfg.HTTPURL != "" {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.run(ctx) }()
	}
	if c.usage != nil && c.conn != nil && cfg.UsageInterval > 0 {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); c.report(ctx) }()
	}
	return c, nil
}

func (c *Client) bootstrap() error {
	b := c.cfg.Bootstrap
	if c.cfg.BootstrapFile != "" {
		var err error
		if b, err = os.ReadFile(c.cfg.BootstrapFile); err != nil {
			return fmt.Errorf("sdk: bootstrap: %w", err)
		}
	}
	if b == nil {
		return nil
	}
	sm, err := ReadSignedManifest(b)
	if err != nil {
		return fmt.Errorf("sdk: bootstrap: %w", err)
	}
	if _, err := c.applySnapshot(sm); err != nil {
		return fmt.Errorf("sdk: bootstrap: %w", err)
	}
	return nil
}

// ReadSignedManifest decodes a SignedManifest in protobuf binary (as GET
// /v1/manifest serves it by default) or protojson (a document starting with '{').
func ReadSignedManifest(b []byte) (*manifestv1.SignedManifest, error) {
	sm := &manifestv1.SignedManifest{}
	for _, ch := range b {
		if ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' {
			continue
		}
		if ch == '{' {
			if err := protojson.Unmarshal(b, sm); err != nil {
				return nil, fmt.Errorf("sdk: signed manifest (JSON): %w", err)
			}
			return sm, nil
		}
		break
	}
	if err := proto.Unmarshal(b, sm); err != nil {
		return nil, fmt.Errorf("sdk: signed manifest: %w", err)
	}
	return sm, nil
}

// ApplySignedManifest verifies sm exactly as a manifest from the evaluator is
// verified (trusted key, signature, expiry, same environment, not older than the
// one held) and swaps it in. A refused manifest leaves the one held serving; the
// error wraps the manifest package's reason (manifest.ErrBadSignature, ErrStale...).
func (c *Client) ApplySignedManifest(sm *manifestv1.SignedManifest) error {
	if _, err := c.applySnapshot(sm); err != nil {
		if !errors.Is(err, manifest.ErrStale) {
			c.setError(err)
		}
		return err
	}
	return nil
}

// WaitReady waits until the client is ready (nil), the evaluator refuses the SDK
// key (an error wrapping ErrKeyRefused), a TLS handshake with the evaluator fails
// on a certificate or protocol error (an error wrapping ErrTLS, at once: waiting
// would not fix it), the client is closed (ErrClosed), or ctx ends (ctx.Err()). Ready means caught up: a client that talks to an evaluator is
// ready once it holds the version the evaluator announced as current when the
// stream opened (StreamStart) or that a poll returned, never on an older snapshot
// or bootstrap manifest; an offline client is ready with its bootstrap manifest.
// Evaluations work without it (from whatever manifest is held).
func (c *Client) WaitReady(ctx context.Context) error {
	for {
		select {
		case <-c.ready:
			return nil
		default:
		}
		c.mu.Lock()
		tlsErr, tlsFailed := c.tlsErr, c.tlsFailed
		c.mu.Unlock()
		if tlsErr != nil {
			return tlsErr
		}
		select {
		case <-c.ready:
			return nil
		case <-c.fatalCh:
			c.mu.Lock()
			defer c.mu.Unlock()
			return c.fatal
		case <-c.done:
			return ErrClosed
		case <-tlsFailed:
			// A handshake failed: report it (the loop reads it).
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close stops syncing, sends the pending evaluation counts (best effort, bounded
// by a few seconds), and stops every goroutine the client started. Evaluations
// after Close keep answering from the last manifest. Close is idempotent.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.done)
		c.cancel()
		c.wg.Wait()
		c.events.close()
		if c.conn != nil {
			_ = c.conn.Close()
		}
		if c.ownHTTP {
			c.http.CloseIdleConnections()
		}
	})
	return nil
}

// held returns the manifest proto held (nil: none).
func (c *Client) held() *manifestv1.Manifest {
	if s := c.state.Load(); s != nil {
		return s.src
	}
	return nil
}

// applySnapshot verifies sm as the successor of the manifest held and swaps it in.
// changed reports whether anything was swapped (false for an equal re-delivery).
func (c *Client) applySnapshot(sm *manifestv1.SignedManifest) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.state.Load()
	var held *manifestv1.Manifest
	var heldVer *manifest.Version
	if old != nil {
		held, heldVer = old.src, old.ver
	}
	ver, err := c.verifier.OpenNext(heldVer, sm)
	if err != nil {
		return false, err
	}
	m := ver.Manifest()
	cm, err := eval.Compile(m)
	if err != nil {
		return false, fmt.Errorf("sdk: compiling version %d: %w", m.GetVersion(), err)
	}
	c.swapLocked(old, &snapshot{m: cm, src: m, ver: ver}, changedFlags(held, m))
	return true, nil
}

// errGap says a delta does not start at the version held: resubscribe from it.
var errGap = errors.New("sdk: delta does not start at the version held")

// applyDelta verifies sd and applies it when it starts at the version held (a
// delta to a version already held is ignored). A format-2 delta costs what it
// changes: its header's signature, the digests of the entries it changes, and the
// compilation of only the flags and segments it changes (manifest.Verifier.Apply,
// eval.Manifest.Update).
func (c *Client) applyDelta(sd *manifestv1.SignedDelta) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.state.Load()
	if old == nil {
		_, to, _ := manifest.DeltaTarget(sd)
		return fmt.Errorf("%w: none held, delta to %d", errGap, to)
	}
	next, d, err := c.verifier.Apply(old.ver, sd)
	switch {
	case errors.Is(err, manifest.ErrStale):
		return nil
	case errors.Is(err, manifest.ErrNotNext) || errors.Is(err, manifest.ErrMalformed):
		return fmt.Errorf("%w: %w", errGap, err)
	case err != nil:
		return err
	}
	cm, err := old.m.Update(next.Manifest(), d)
	if err != nil {
		return fmt.Errorf("%w: %w", errGap, err)
	}
	c.swapLocked(old, &snapshot{m: cm, src: next.Manifest(), ver: next}, changedByDelta(next.Manifest(), d))
	return nil
}

// swapLocked publishes next (c.mu held) and queues the notifications.
func (c *Client) swapLocked(old, next *snapshot, changed []string) {
	if c.usage != nil {
		next.counters = c.usage.build(next.src)
	}
	c.state.Store(next)
	now := c.cfg.Now()
	c.lastSync = now
	c.lastErr = nil
	c.checkReadyLocked()
	if old != nil {
		c.events.push(item{event: Event{Type: EventConfigurationChanged, FlagKeys: changed, Version: next.src.GetVersion()},
			old: old, next: next, changed: changed})
	}
	c.announceLocked(now)
}

// caughtUpLocked reports whether the client holds what it should to be ready: a
// manifest, and for a networked client at least the head version announced.
func (c *Client) caughtUpLocked() bool {
	s := c.state.Load()
	if s == nil {
		return false
	}
	if !c.networked() {
		return true
	}
	return c.headKnown && s.src.GetVersion() >= c.head
}

// checkReadyLocked closes ready once caught up (c.mu held).
func (c *Client) checkReadyLocked() {
	if c.caughtUpLocked() {
		c.readyOnce.Do(func() { close(c.ready) })
	}
}

// isReady reports whether ready is closed.
func (c *Client) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// setHead records the version the evaluator announced as current and announces
// readiness when it is held already.
func (c *Client) setHead(version uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.head, c.headKnown = version, true
	c.checkReadyLocked()
	c.announceLocked(c.cfg.Now())
}

// markSync records a successful contact with the evaluator.
func (c *Client) markSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastSync = c.cfg.Now()
	c.announceLocked(c.lastSync)
}

// setError records a non-fatal error (kept in Status until the next success).
func (c *Client) setError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastErr = err
}

// setFatal stops the client for good: the evaluator refused its key.
func (c *Client) setFatal(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fatal != nil {
		return
	}
	c.fatal, c.lastErr = err, err
	close(c.fatalCh)
	c.log.Error("the evaluator refused the SDK key; the client stops syncing", "error", err)
	c.announceLocked(c.cfg.Now())
}

func (c *Client) setMode(mode string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mode = mode
}

// changedFlags lists the flags whose configuration differs between from and to
// (added, removed or changed), plus the flags whose rules refer to a segment that
// changed. Sorted.
func changedFlags(from, to *manifestv1.Manifest) []string {
	if from == nil {
		return nil
	}
	set := map[string]bool{}
	oldFlags := make(map[string]*manifestv1.Flag, len(from.GetFlags()))
	for _, f := range from.GetFlags() {
		oldFlags[f.GetKey()] = f
	}
	for _, f := range to.GetFlags() {
		if o, ok := oldFlags[f.GetKey()]; !ok || !proto.Equal(o, f) {
			set[f.GetKey()] = true
		}
		delete(oldFlags, f.GetKey())
	}
	for k := range oldFlags {
		set[k] = true
	}
	oldSegs := make(map[string]*manifestv1.Segment, len(from.GetSegments()))
	for _, s := range from.GetSegments() {
		oldSegs[s.GetKey()] = s
	}
	segChanged := map[string]bool{}
	for _, s := range to.GetSegments() {
		if o, ok := oldSegs[s.GetKey()]; !ok || !proto.Equal(o, s) {
			segChanged[s.GetKey()] = true
		}
		delete(oldSegs, s.GetKey())
	}
	for k := range oldSegs {
		segChanged[k] = true
	}
	if len(segChanged) > 0 {
		for _, f := range to.GetFlags() {
			if usesSegment(f, segChanged) {
				set[f.GetKey()] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// changedByDelta lists the flags d changes in to: the flags it upserts or deletes,
// and the flags that use a segment it changes (a scan of to, only then).
func changedByDelta(to *manifestv1.Manifest, d *manifestv1.ManifestDelta) []string {
	set := map[string]bool{}
	for _, f := range d.GetUpsertedFlags() {
		set[f.GetKey()] = true
	}
	for _, k := range d.GetDeletedFlags() {
		set[k] = true
	}
	segs := map[string]bool{}
	for _, s := range d.GetUpsertedSegments() {
		segs[s.GetKey()] = true
	}
	for _, k := range d.GetDeletedSegments() {
		segs[k] = true
	}
	if len(segs) > 0 {
		for _, f := range to.GetFlags() {
			if usesSegment(f, segs) {
				set[f.GetKey()] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func usesSegment(f *manifestv1.Flag, segs map[string]bool) bool {
	for _, r := range f.GetConfig().GetRules() {
		for _, cl := range r.GetClauses() {
			if cl.GetOperator() != manifestv1.Operator_OPERATOR_SEGMENT_MATCH {
				continue
			}
			for _, v := range cl.GetValues() {
				if segs[v.GetStringValue()] {
					return true
				}
			}
		}
	}
	return false
}
