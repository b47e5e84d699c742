// Package broadcast fans manifest changes out to the evaluator's open streams:
// StreamManifest (server SDKs, signed snapshots and deltas) and SSE (browsers,
// evaluated results).
//
// The contract:
//   - The hub follows the holder (Publish is the holder's OnUpdate listener) and keeps,
//     per environment, the latest signed full manifest (the holder's Env.Signed(): of
//     the current version whenever deltas carry their result signature, so a new
//     subscriber always gets a snapshot at once) and a bounded ring of the signed
//     deltas received since, contiguous up to the version held. It never signs
//     anything: a subscriber resuming from a version the ring covers gets those
//     deltas, any other gets the signed manifest (plus any deltas after it).
//   - Every manifest stream starts with a StreamStart frame naming the version held
//     (the head): the subscriber is caught up once it holds that version.
//   - Each event is serialized once (a Frame) and the same bytes go to every
//     subscriber. Enqueueing never blocks: every subscriber has a bounded buffer, and
//     one whose buffer is full is dropped with reason "slow_consumer" (Done closes), so
//     a slow subscriber never holds back the others.
//   - After every swap (and at every heartbeat) the hub checks each subscriber's SDK
//     key against the new key index: a revoked or expired key closes its streams with
//     reason "key_revoked".
//   - Drain closes every stream with reason "draining" and refuses new ones.
//   - Concurrent streams are capped per SDK key and per process (ResourceExhausted).
package broadcast

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
)

// Reasons a stream is closed by the server (StreamClosing.reason).
const (
	ReasonSlowConsumer = "slow_consumer"
	ReasonKeyRevoked   = "key_revoked"
	ReasonDraining     = "draining"
	// ReasonMaxAge ends a stream that reached the age its caller announced
	// (an HTTP/1.1 /v1/stream: limits.MaxAge).
	ReasonMaxAge = "max_age"
)

// Stream kinds (the "kind" label of the open-streams gauge).
const (
	KindManifest = "manifest"
	KindSSE      = "sse"
)

// Config configures a Hub.
type Config struct {
	// Buffer is each manifest subscriber's queue length (default 64).
	Buffer int
	// Ring is how many recent deltas are kept per environment for resumption
	// (default 128).
	Ring int
	// Heartbeat is the period of heartbeats and key re-checks (default 15s).
	Heartbeat time.Duration
	// MaxPerKey caps the concurrent streams of one SDK key (0: no cap).
	MaxPerKey int
	// MaxStreams caps the concurrent streams of the process (0: no cap).
	MaxStreams int
	// RetryAfter is what a capped caller is told (default 5s).
	RetryAfter time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Registerer receives the stream metrics (nil: none registered).
	Registerer prometheus.Registerer
}

// Frame is one StreamManifestResponse, serialized once and shared by every
// subscriber. Do not mutate.
type Frame struct {
	Msg   *evaluationv1.StreamManifestResponse
	Bytes []byte
	// Version is the manifest version the frame brings the receiver to (deltas and
	// snapshots) or announces (heartbeats).
	Version uint64

	ndjsonOnce sync.Once
	ndjson     []byte
	ndjsonErr  error
}

// NDJSON is the frame as one line of GET /v1/stream, the way grpc-gateway
// streams it: {"result":<the message as compact protojson>} and a newline.
// It is encoded on first use and shared by every stream.
func (f *Frame) NDJSON() ([]byte, error) {
	f.ndjsonOnce.Do(func() {
		b, err := protojson.Marshal(f.Msg)
		if err != nil {
			f.ndjsonErr = err
			return
		}
		var buf bytes.Buffer
		buf.Grow(len(b) + 12)
		buf.WriteString(`{"result":`)
		if err := json.Compact(&buf, b); err != nil { // protojson may add random spaces
			f.ndjsonErr = err
			return
		}
		buf.WriteString("}\n")
		f.ndjson = buf.Bytes()
	})
	return f.ndjson, f.ndjsonErr
}

// NewFrame serializes msg.
func NewFrame(msg *evaluationv1.StreamManifestResponse, version uint64) (*Frame, error) {
	b, err := proto.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return &Frame{Msg: msg, Bytes: b, Version: version}, nil
}

// Closing is the frame that tells a subscriber why the server ends its stream.
func Closing(reason, message string) *Frame {
	f, _ := NewFrame(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Closing{
		Closing: &evaluationv1.StreamClosing{Reason: reason, Message: message},
	}}, 0)
	return f
}

// env is what the hub keeps of one environment. Guarded by Hub.mu.
type env struct {
	version uint64
	// base is the latest signed full manifest received, as a snapshot frame.
	// It is built lazily from baseEnv (nil until a subscriber needs it), so a
	// delta's result costs no serialization unless someone asks for a snapshot
	// (format 2: not even the encoding of the full manifest).
	base *Frame
	// baseEnv, baseVersion and baseIssued describe the latest version with a
	// signed copy (baseEnv.Signed()).
	baseEnv     *holder.Env
	baseVersion uint64
	baseIssued  time.Time
	// ring holds the signed deltas received, contiguous, the last ending at version.
	ring []ringEntry
	subs map[*Sub]struct{}
	// changed is closed (and replaced) whenever a new version or signed copy arrives.
	changed chan struct{}
}

// ringEntry is a delta frame and the version it starts from.
type ringEntry struct {
	from  uint64
	frame *Frame
}

// Hub is the per-process fan-out point. Create it with New and run Run.
type Hub struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	envs     map[string]*env
	keys     auth.Index
	perKey   map[[sha256.Size]byte]int
	total    int
	draining bool
	// beats is closed (and replaced) at every heartbeat round: the one shared
	// wake-up of every SSE stream's heartbeat (no timer per stream).
	beats chan struct{}

	open      *prometheus.GaugeVec
	dropped   *prometheus.CounterVec
	fanout    prometheus.Histogram
	heartbeat prometheus.Counter
}

// New returns a hub with no environment yet.
func New(cfg Config) (*Hub, error) {
	if cfg.Buffer <= 0 {
		cfg.Buffer = 64
	}
	if cfg.Ring <= 0 {
		cfg.Ring = 128
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 15 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &Hub{
		cfg: cfg, now: cfg.Now, envs: map[string]*env{}, keys: auth.Index{}, perKey: map[[sha256.Size]byte]int{},
		beats: make(chan struct{}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "flagforge_evaluator_streams_open",
			Help: "Streams open now, by kind (manifest: StreamManifest and /v1/stream; sse: /v1/sse).",
		}, []string{"kind"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagforge_evaluator_stream_closed_by_server_total",
			Help: "Streams the server ended on purpose, by reason (slow_consumer: dropped subscribers; key_revoked; draining).",
		}, []string{"reason"}),
		fanout: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "flagforge_evaluator_fanout_duration_seconds",
			Help:    "Time from a manifest or delta being received to the last subscriber having it enqueued.",
			Buckets: []float64{1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1},
		}),
		heartbeat: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "flagforge_evaluator_stream_heartbeats_total",
			Help: "Heartbeat rounds sent to manifest subscribers.",
		}),
	}
	for _, k := range []string{KindManifest, KindSSE} {
		h.open.WithLabelValues(k)
	}
	for _, r := range []string{ReasonSlowConsumer, ReasonKeyRevoked, ReasonDraining} {
		h.dropped.WithLabelValues(r)
	}
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{h.open, h.dropped, h.fanout, h.heartbeat} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// Heartbeat is the configured heartbeat period.
func (h *Hub) Heartbeat() time.Duration { return h.cfg.Heartbeat }

// Beats is closed at the next heartbeat round (Run): a stream that sends its own
// heartbeats (SSE, OFREP events) waits on it, then calls Beats again for the
// round after. One channel serves every stream: no timer per stream.
func (h *Hub) Beats() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.beats
}

// Sub is one open stream. Manifest subscribers read Frames; SSE subscribers read
// Changed (a coalescing signal: they evaluate the latest state themselves).
type Sub struct {
	target string
	key    [sha256.Size]byte
	kind   auth.Kind
	sse    bool
	frames chan *Frame
	notify chan struct{}
	done   chan struct{}
	reason string // set before done is closed
	hub    *Hub
}

// Frames delivers the frames to send, in order (nil channel for SSE subscribers).
func (s *Sub) Frames() <-chan *Frame { return s.frames }

// Changed is signalled (coalesced) whenever the environment's manifest changes.
func (s *Sub) Changed() <-chan struct{} { return s.notify }

// Done is closed when the server ends the stream; Reason then says why.
func (s *Sub) Done() <-chan struct{} { return s.done }

// Reason is why the server ended the stream ("" while it is open).
func (s *Sub) Reason() string {
	select {
	case <-s.done:
		return s.reason
	default:
		return ""
	}
}

// Err is the error a stream ended by the server returns to its caller: nil when
// draining (the closing message says to reconnect), ResourceExhausted for a slow
// consumer, Unauthenticated for a revoked key.
func (s *Sub) Err() error {
	switch s.Reason() {
	case ReasonSlowConsumer:
		return &errs.Error{Kind: errs.ResourceExhausted, Message: "stream closed: the subscriber did not keep up", RetryAfter: time.Second}
	case ReasonKeyRevoked:
		return errs.E(errs.Unauthenticated, "stream closed: the SDK key was revoked or expired")
	}
	return nil // draining ends the stream normally, after the closing message
}

// Close unsubscribes (the caller's stream ended). It is idempotent.
func (s *Sub) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	s.hub.remove(s)
}

// Request names what a subscriber wants.
type Request struct {
	// Grant is the authenticated key (its environment, kind and hash).
	Grant auth.Grant
	// SSE subscribers get change signals instead of frames.
	SSE bool
	// FromVersion is the version the caller holds (manifest subscribers; 0: none).
	FromVersion uint64
}

// Subscribe registers a subscriber and returns the frames to send first: deltas
// from FromVersion when the ring covers them, otherwise the latest signed manifest
// and the deltas after it, or a heartbeat when the caller is current. Nothing
// published after Subscribe returns is missed.
func (h *Hub) Subscribe(req Request) (*Sub, []*Frame, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.draining {
		return nil, nil, errs.E(errs.Unavailable, "the evaluator is draining; reconnect")
	}
	g := req.Grant
	if h.cfg.MaxStreams > 0 && h.total >= h.cfg.MaxStreams {
		return nil, nil, &errs.Error{Kind: errs.ResourceExhausted, Message: "too many streams on this evaluator", RetryAfter: h.cfg.RetryAfter}
	}
	if h.cfg.MaxPerKey > 0 && h.perKey[g.KeyHash] >= h.cfg.MaxPerKey {
		return nil, nil, &errs.Error{Kind: errs.ResourceExhausted, Message: "too many streams for this SDK key", RetryAfter: h.cfg.RetryAfter}
	}
	e := h.envs[g.Environment]
	if e == nil {
		return nil, nil, errs.E(errs.Unavailable, "environment %s is not loaded yet", g.Environment)
	}
	var initial []*Frame
	if !req.SSE {
		var err error
		if initial, err = e.catchUp(req.FromVersion, h.now()); err != nil {
			return nil, nil, err
		}
	}
	s := &Sub{target: g.Environment, key: g.KeyHash, kind: g.Kind, sse: req.SSE, done: make(chan struct{}), hub: h}
	if req.SSE {
		s.notify = make(chan struct{}, 1)
		h.open.WithLabelValues(KindSSE).Inc()
	} else {
		s.frames = make(chan *Frame, h.cfg.Buffer)
		h.open.WithLabelValues(KindManifest).Inc()
	}
	if e.subs == nil {
		e.subs = map[*Sub]struct{}{}
	}
	e.subs[s] = struct{}{}
	h.perKey[g.KeyHash]++
	h.total++
	return s, initial, nil
}

// catchUp returns the frames that bring a caller at from to e.version, after the
// start frame that names that version.
func (e *env) catchUp(from uint64, now time.Time) ([]*Frame, error) {
	start, err := NewFrame(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Start{
		Start: &evaluationv1.StreamStart{HeadVersion: e.version},
	}}, e.version)
	if err != nil {
		return nil, err
	}
	if from >= e.version {
		hb, err := heartbeatFrame(e.version, now)
		if err != nil {
			return nil, err
		}
		return []*Frame{start, hb}, nil
	}
	if from > 0 {
		if out := e.deltasFrom(from); out != nil {
			return append([]*Frame{start}, out...), nil
		}
	}
	base := e.baseFrame()
	if base == nil {
		return nil, &errs.Error{Kind: errs.Unavailable, Message: "no signed manifest of this environment is held yet", RetryAfter: time.Second}
	}
	out := []*Frame{start, base}
	if base.Version < e.version {
		rest := e.deltasFrom(base.Version)
		if rest == nil {
			return nil, &errs.Error{Kind: errs.Unavailable, Message: "the signed manifest of the current version is not held yet", RetryAfter: time.Second}
		}
		out = append(out, rest...)
	}
	return out, nil
}

// deltasFrom returns the ring's deltas from version v on, or nil when the ring
// does not start at or before v.
func (e *env) deltasFrom(v uint64) []*Frame {
	for i, r := range e.ring {
		if r.from == v {
			out := make([]*Frame, 0, len(e.ring)-i)
			for _, r := range e.ring[i:] {
				out = append(out, r.frame)
			}
			return out
		}
	}
	return nil
}

func heartbeatFrame(version uint64, now time.Time) (*Frame, error) {
	return NewFrame(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Heartbeat{
		Heartbeat: &evaluationv1.Heartbeat{Version: version, Time: timestamppb.New(now)},
	}}, version)
}

// Publish is the holder's OnUpdate listener: it records the update and enqueues it
// for every subscriber of the environment, dropping those whose buffer is full and
// closing the streams of keys no longer valid.
func (h *Hub) Publish(u holder.Update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.keys = u.State.Keys()
	target := u.Env.Target
	e := h.envs[target]
	if e == nil {
		e = &env{changed: make(chan struct{})}
		h.envs[target] = e
	}
	var out *Frame
	version := u.Env.Version()
	switch {
	case u.Adopted:
		e.setBase(u.Env)
	case u.Delta != nil:
		f, err := NewFrame(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Delta{Delta: u.Delta}}, version)
		if err != nil {
			return
		}
		if len(e.ring) > 0 && e.ring[len(e.ring)-1].frame.Version != e.version {
			e.ring = nil // not contiguous: a full manifest came in between
		}
		e.ring = append(e.ring, ringEntry{from: e.version, frame: f})
		if over := len(e.ring) - h.cfg.Ring; over > 0 {
			e.ring = append([]ringEntry(nil), e.ring[over:]...)
		}
		e.setBase(u.Env) // the delta's result, when it carried its signature
		out = f
	default:
		e.setBase(u.Env)
		if version != e.version {
			e.ring = nil // the deltas held end at the old version
		}
		out = e.baseFrame()
	}
	e.version = version
	close(e.changed)
	e.changed = make(chan struct{})

	// Revocation first: every environment's keys may have changed with the index.
	h.recheckKeys(now)
	if out != nil {
		for s := range e.subs {
			h.enqueue(s, out)
		}
	} else {
		for s := range e.subs {
			if s.sse {
				signalSSE(s)
			}
		}
	}
	if !u.Received.IsZero() {
		h.fanout.Observe(h.now().Sub(u.Received).Seconds())
	}
}

// setBase records he's signed manifest (when it has one) as the snapshot to give.
func (e *env) setBase(he *holder.Env) {
	if !he.HasSigned() {
		return
	}
	e.base, e.baseEnv, e.baseVersion, e.baseIssued = nil, he, he.Version(), he.Manifest.GetIssuedAt().AsTime()
}

// baseFrame is the snapshot frame of the latest signed manifest (nil: none held),
// serialized on first use.
func (e *env) baseFrame() *Frame {
	if e.base == nil && e.baseEnv != nil {
		sm := e.baseEnv.Signed()
		if sm == nil {
			return nil
		}
		f, err := NewFrame(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Snapshot{Snapshot: sm}}, e.baseVersion)
		if err != nil {
			return nil
		}
		e.base = f
	}
	return e.base
}

// enqueue hands f to s without blocking; a full buffer drops s. Called with h.mu.
func (h *Hub) enqueue(s *Sub, f *Frame) {
	if s.sse {
		signalSSE(s)
		return
	}
	select {
	case s.frames <- f:
	default:
		h.drop(s, ReasonSlowConsumer)
	}
}

func signalSSE(s *Sub) {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// recheckKeys closes the streams of keys that no longer grant access. Called with h.mu.
func (h *Hub) recheckKeys(now time.Time) {
	for _, e := range h.envs {
		for s := range e.subs {
			if !h.keys.Valid(s.key, s.target, s.kind, now) {
				h.drop(s, ReasonKeyRevoked)
			}
		}
	}
}

// drop ends s with reason. Called with h.mu.
func (h *Hub) drop(s *Sub, reason string) {
	if !h.remove(s) {
		return
	}
	s.reason = reason
	close(s.done)
	h.dropped.WithLabelValues(reason).Inc()
}

// remove unregisters s; it reports whether s was registered. Called with h.mu.
func (h *Hub) remove(s *Sub) bool {
	e := h.envs[s.target]
	if e == nil {
		return false
	}
	if _, ok := e.subs[s]; !ok {
		return false
	}
	delete(e.subs, s)
	if h.perKey[s.key]--; h.perKey[s.key] <= 0 {
		delete(h.perKey, s.key)
	}
	h.total--
	if s.sse {
		h.open.WithLabelValues(KindSSE).Dec()
	} else {
		h.open.WithLabelValues(KindManifest).Dec()
	}
	return true
}

// Drain ends every stream with reason "draining" and refuses new ones.
func (h *Hub) Drain() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = true
	for _, e := range h.envs {
		for s := range e.subs {
			h.drop(s, ReasonDraining)
		}
	}
}

// Run sends heartbeats (one shared frame per environment) and re-checks keys for
// expiry every heartbeat period until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	t := time.NewTicker(h.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			h.beat()
		}
	}
}

func (h *Hub) beat() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	h.recheckKeys(now)
	for _, e := range h.envs {
		if len(e.subs) == 0 {
			continue
		}
		hb, err := heartbeatFrame(e.version, now)
		if err != nil {
			continue
		}
		for s := range e.subs {
			if !s.sse {
				h.enqueue(s, hb)
			}
		}
	}
	close(h.beats)
	h.beats = make(chan struct{})
	h.heartbeat.Inc()
}

// Signed is the latest signed full manifest of target, for polling: the manifest,
// its version and issue time, and a channel closed at the next change. ok is false
// when none is held.
func (h *Hub) Signed(target string) (sm *manifestv1.SignedManifest, version uint64, issued time.Time, changed <-chan struct{}, ok bool) {
	h.mu.Lock()
	e := h.envs[target]
	if e == nil {
		h.mu.Unlock()
		return nil, 0, time.Time{}, nil, false
	}
	he, version, issued, changed := e.baseEnv, e.baseVersion, e.baseIssued, e.changed
	h.mu.Unlock()
	if he == nil {
		return nil, 0, time.Time{}, changed, false
	}
	// Built outside the lock: a format-2 version encodes its full manifest on the
	// first request for it (then it is cached).
	if sm = he.Signed(); sm == nil {
		return nil, 0, time.Time{}, changed, false
	}
	return sm, version, issued, changed, true
}
