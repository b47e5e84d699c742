// Package holder keeps, per environment, the current verified manifest compiled for
// evaluation, and swaps it atomically.
//
// The contract:
//   - Readers call State and never lock: a *State is immutable; an update builds a
//     new one (environments, compiled manifests, the SDK-key index) and swaps the
//     pointer. Writers (Offer, OfferDelta, Expect, LoadLocal) are serialized.
//   - Every manifest goes through the pkg/manifest Verifier: a tampered,
//     unknown-key, expired, malformed, older (Verifier.Next) or other environment's
//     manifest is refused, counted (flagforge_evaluator_manifest_refusals_total by
//     reason) and logged, and the last good manifest keeps serving.
//   - A delta is applied (manifest.Apply) only when it starts at the version held;
//     otherwise OfferDelta returns ErrGap and the caller re-reads the full manifest.
//   - A delta that carries the signature of the manifest it produces
//     (SignedDelta.result_signature) also yields that version's complete
//     SignedManifest (manifest.Verifier.Result): the holder then holds, for every
//     version it serves, the signed manifest of exactly that version. A delta
//     without it (an older publisher) leaves Env.Signed nil until the full
//     manifest of that version is offered.
//   - Every version is on disk before it is swapped in: the local copy is a full
//     SignedManifest, {dataDir}/{org}/{project}/{environment}.manifest (temp file,
//     fsync, atomic rename), followed by the format-2 deltas applied since, appended
//     (and fsynced) to the same name plus ".deltas"; the full copy is rewritten, and
//     the log emptied, when the log outgrows it (so writing costs what the deltas
//     weigh, amortized). LoadLocal starts from those files, verified like any other
//     manifest and delta: a restart from disk serves the last version served.
//   - Ready means caught up: every expected environment is held at no less than
//     the head version its source announced (SetHeads: the start of a sync
//     stream, a full read from Redis).
//   - Freshness: the holder records, per environment, when the source last
//     confirmed the version held (a swap, a heartbeat, a re-read: Confirm) and
//     whether the source is reachable (SetSourceUp), and exports both with the
//     version lag (see collector).
package holder

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
)

// ErrGap says a delta does not start at the version held: re-read the full manifest.
var ErrGap = errors.New("holder: delta does not start at the version held")

// ErrNotServed says the manifest is for an environment this evaluator does not serve.
var ErrNotServed = errors.New("holder: environment not served")

// Refusal reasons (the "reason" label of the refusal counter).
const (
	ReasonBadSignature = "bad_signature"
	ReasonUnknownKey   = "unknown_key"
	ReasonExpired      = "expired"
	ReasonStale        = "stale"
	ReasonWrongTarget  = "wrong_target"
	ReasonMalformed    = "malformed"
	ReasonUncompilable = "uncompilable"
)

// FileExt ends the name of every local manifest copy.
const FileExt = ".manifest"

// Env is one environment's current manifest. It is immutable.
type Env struct {
	// Target is "org/project/environment".
	Target string
	// Manifest is the verified manifest (do not mutate).
	Manifest *manifestv1.Manifest
	// Compiled is Manifest compiled for evaluation.
	Compiled *engine.Manifest
	// Held is the verified version: the manifest, its signed header (format 2) or
	// signed manifest (format 1), its content digests.
	Held *manifest.Version
	// LoadedAt is when this version was swapped in.
	LoadedAt time.Time
}

// Signed is the complete signed copy of the version (format 2: the signed header
// with the full manifest, encoded on first use and then cached); nil when it was
// built from a format-1 delta without a result signature and no signed copy of this
// version has been seen yet.
func (e *Env) Signed() *manifestv1.SignedManifest {
	sm, err := e.Held.Signed()
	if err != nil {
		return nil
	}
	return sm
}

// HasSigned reports whether Signed returns a copy, without building it.
func (e *Env) HasSigned() bool { return e.Held.HasSigned() }

// Version is the version held.
func (e *Env) Version() uint64 { return e.Manifest.GetVersion() }

// State is everything evaluations read, swapped whole. It is immutable.
type State struct {
	envs     map[string]*Env
	keys     auth.Index
	expected []string
	// heads are the versions the source announced as current (0 or absent: none).
	heads map[string]uint64
}

// Head is the version the source last announced as current for target (0: none).
func (s *State) Head(target string) uint64 { return s.heads[target] }

// Env returns the environment's manifest, or nil when none is held.
func (s *State) Env(target string) *Env { return s.envs[target] }

// Keys is the SDK-key index of every held manifest.
func (s *State) Keys() auth.Index { return s.keys }

// Targets lists the environments held, sorted.
func (s *State) Targets() []string {
	out := make([]string, 0, len(s.envs))
	for t := range s.envs {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// Ready reports whether every expected environment has a verified manifest at no
// less than its announced head version (and, when none is expected by name, at
// least one is held and every one held is caught up).
func (s *State) Ready() bool {
	if len(s.expected) == 0 {
		if len(s.envs) == 0 {
			return false
		}
		for t, e := range s.envs {
			if e.Version() < s.heads[t] {
				return false
			}
		}
		return true
	}
	for _, t := range s.expected {
		if e := s.envs[t]; e == nil || e.Version() < s.heads[t] {
			return false
		}
	}
	return true
}

// with returns a copy of s with other expected environments and heads.
func (s *State) with(expected []string, heads map[string]uint64) *State {
	return &State{envs: s.envs, keys: s.keys, expected: expected, heads: heads}
}

// Config configures a Holder.
type Config struct {
	// Verifier checks every manifest and delta (required).
	Verifier *manifest.Verifier
	// Environments are the environments served ("org/project/environment"); empty:
	// every environment offered.
	Environments []string
	// DataDir holds the local copies; "" disables them.
	DataDir string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
	// Registerer receives the holder's metrics (nil: none registered).
	Registerer prometheus.Registerer
	// OnUpdate, when set, is called after every swap, in order, with the writer lock
	// held: it must not block (the stream hub enqueues and returns) and must not call
	// the holder's writers.
	OnUpdate func(Update)
}

// Update describes one swap, for listeners (the stream hub).
type Update struct {
	// Env is the environment's new manifest.
	Env *Env
	// State is the new state (its SDK-key index tells which keys still work).
	State *State
	// Delta is the signed delta the version arrived as; nil when it arrived as a full
	// manifest (Env.Signed()).
	Delta *manifestv1.SignedDelta
	// Adopted is true when nothing changed but the signed copy of the version held
	// (built earlier from a delta) arrived: Env.Signed() is now set.
	Adopted bool
	// Received is when the holder was handed the manifest or delta.
	Received time.Time
}

// Holder holds the manifests of the environments served.
type Holder struct {
	cfg      Config
	log      *slog.Logger
	serves   map[string]bool // nil: everything
	mu       sync.Mutex      // serializes writers
	state    atomic.Pointer[State]
	refusals *prometheus.CounterVec
	updates  *prometheus.CounterVec
	disk     map[string]*diskState // guarded by mu: what each local copy holds

	fmu       sync.Mutex // guards the freshness fields below
	started   time.Time
	confirmed map[string]time.Time
	sourceUp  bool
}

// New returns a Holder with no manifest yet.
func New(cfg Config) (*Holder, error) {
	if cfg.Verifier == nil {
		return nil, errors.New("holder: a verifier is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Holder{
		cfg: cfg, log: cfg.Logger, started: cfg.Now(), confirmed: map[string]time.Time{}, disk: map[string]*diskState{},
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flagforge_evaluator_manifest_refusals_total",
			Help: "Manifests and deltas refused (the last good manifest kept serving), by reason.",
		}, []string{"reason"}),
	}
	h.updates = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "flagforge_evaluator_manifest_updates_total",
		Help: "Manifest versions swapped in, by how they arrived (full manifest or delta).",
	}, []string{"kind"})
	for _, r := range []string{ReasonBadSignature, ReasonUnknownKey, ReasonExpired, ReasonStale, ReasonWrongTarget, ReasonMalformed, ReasonUncompilable} {
		h.refusals.WithLabelValues(r)
	}
	st := &State{envs: map[string]*Env{}, keys: auth.Index{}, heads: map[string]uint64{}}
	if len(cfg.Environments) > 0 {
		h.serves = make(map[string]bool, len(cfg.Environments))
		for _, t := range cfg.Environments {
			h.serves[t] = true
		}
		st.expected = slices.Clone(cfg.Environments)
	}
	h.state.Store(st)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(h.refusals); err != nil {
			return nil, fmt.Errorf("holder: metrics: %w", err)
		}
		if err := cfg.Registerer.Register(h.updates); err != nil {
			return nil, fmt.Errorf("holder: metrics: %w", err)
		}
		if err := cfg.Registerer.Register(collector{h}); err != nil {
			return nil, fmt.Errorf("holder: metrics: %w", err)
		}
	}
	return h, nil
}

// State returns the current state. It never blocks.
func (h *Holder) State() *State { return h.state.Load() }

// Ready reports whether every expected environment is loaded.
func (h *Holder) Ready() bool { return h.State().Ready() }

// Serves reports whether the holder accepts manifests of target.
func (h *Holder) Serves(target string) bool { return h.serves == nil || h.serves[target] }

// Version returns the version held for target (0: none).
func (h *Holder) Version(target string) uint64 {
	if e := h.State().Env(target); e != nil {
		return e.Version()
	}
	return 0
}

// Signed returns the signed manifest held for target (nil: none held, or the
// version was built from a delta that carried no result signature).
func (h *Holder) Signed(target string) *manifestv1.SignedManifest {
	if e := h.State().Env(target); e != nil {
		return e.Signed()
	}
	return nil
}

// Header returns the signed header held for target (nil: none held, or a format-1
// version).
func (h *Holder) Header(target string) *manifestv1.SignedHeader {
	if e := h.State().Env(target); e != nil {
		return e.Held.Header()
	}
	return nil
}

// Expect adds environments that must be loaded before the holder is ready (used
// when serving every environment: the source announces the ones that exist).
func (h *Holder) Expect(targets []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.State()
	exp := slices.Clone(cur.expected)
	for _, t := range targets {
		if h.Serves(t) && !slices.Contains(exp, t) {
			exp = append(exp, t)
		}
	}
	if len(exp) == len(cur.expected) {
		return
	}
	h.state.Store(cur.with(exp, cur.heads))
}

// SetHeads records the versions the source announced as current (the start of a
// sync stream, a full read from Redis): the holder is ready once it holds at least
// these versions. Environments not served are ignored; when every environment is
// served, each one named becomes expected. The source confirmed them just now.
func (h *Holder) SetHeads(heads map[string]uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	cur := h.State()
	nh := make(map[string]uint64, len(cur.heads)+len(heads))
	for t, v := range cur.heads {
		nh[t] = v
	}
	exp := cur.expected
	var named []string
	for t, v := range heads {
		if !h.Serves(t) {
			continue
		}
		nh[t] = v
		named = append(named, t)
		if h.serves == nil && !slices.Contains(exp, t) {
			exp = append(slices.Clip(exp), t)
		}
	}
	h.state.Store(cur.with(exp, nh))
	h.Confirm(named...)
}

// Confirm records that the source confirmed, just now, the version held of
// targets (none: of every environment held), e.g. a heartbeat or a re-read that
// found nothing newer.
func (h *Holder) Confirm(targets ...string) {
	now := h.cfg.Now()
	if len(targets) == 0 {
		targets = h.State().Targets()
	}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	for _, t := range targets {
		h.confirmed[t] = now
	}
}

// SetSourceUp records whether the source is reachable now (a stream open, Redis
// answering).
func (h *Holder) SetSourceUp(up bool) {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	h.sourceUp = up
}

// EnvStatus is the freshness of one environment (the readiness detail).
type EnvStatus struct {
	Environment string `json:"environment"`
	// Version is the version held (0: none); Head the version the source announced.
	Version uint64 `json:"version"`
	Head    uint64 `json:"headVersion"`
	// ConfirmedAgeSeconds is the time since the source last confirmed Version
	// (since the process started, when it never did).
	ConfirmedAgeSeconds float64 `json:"confirmedAgeSeconds"`
}

// Freshness is the readiness detail: whether the holder is ready, whether the
// source is reachable, and each known environment's freshness, sorted.
type Freshness struct {
	Ready        bool        `json:"ready"`
	SourceUp     bool        `json:"sourceUp"`
	Environments []EnvStatus `json:"environments"`
}

// Freshness reports the readiness detail at this instant.
func (h *Holder) Freshness() Freshness {
	st := h.State()
	now := h.cfg.Now()
	known := map[string]bool{}
	for t := range st.envs {
		known[t] = true
	}
	for _, t := range st.expected {
		known[t] = true
	}
	h.fmu.Lock()
	defer h.fmu.Unlock()
	f := Freshness{Ready: st.Ready(), SourceUp: h.sourceUp, Environments: make([]EnvStatus, 0, len(known))}
	for t := range known {
		es := EnvStatus{Environment: t, Head: st.heads[t]}
		if e := st.envs[t]; e != nil {
			es.Version = e.Version()
		}
		since, ok := h.confirmed[t]
		if !ok {
			since = h.started
		}
		es.ConfirmedAgeSeconds = max(now.Sub(since).Seconds(), 0)
		f.Environments = append(f.Environments, es)
	}
	slices.SortFunc(f.Environments, func(a, b EnvStatus) int { return strings.Compare(a.Environment, b.Environment) })
	return f
}

// Offer verifies sm as the next manifest of target ("" : whatever environment it
// names) and swaps it in. It returns nil when sm was swapped in or is exactly what
// is held, ErrNotServed for another environment, and otherwise the (counted and
// logged) refusal.
func (h *Holder) Offer(target string, sm *manifestv1.SignedManifest) error {
	return h.offer(target, sm, true)
}

func (h *Holder) offer(target string, sm *manifestv1.SignedManifest, persist bool) error {
	received := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	v := h.cfg.Verifier
	var opened *manifest.Version // verified already (to learn its target)
	if target == "" {
		ver, err := v.Open(sm)
		if err != nil {
			return h.refuse("", err)
		}
		opened, target = ver, manifest.Target(ver.Manifest())
	}
	if !h.Serves(target) {
		return ErrNotServed
	}
	cur := h.State().Env(target)
	if cur != nil && cur.Held.Same(sm) {
		if persist {
			h.Confirm(target) // the source still has exactly what is held
		}
		return nil
	}
	var held *manifest.Version
	if cur != nil {
		held = cur.Held
	}
	ver, err := opened, error(nil)
	if ver == nil {
		ver, err = v.Open(sm)
	}
	if err == nil && held != nil {
		err = manifest.Follows(held.Manifest(), ver.Manifest())
	}
	if err != nil {
		if cur != nil && !cur.HasSigned() && errors.Is(err, manifest.ErrStale) && h.adopt(cur, sm, received) {
			return nil
		}
		return h.refuse(target, err)
	}
	m := ver.Manifest()
	if got := manifest.Target(m); got != target {
		return h.refuse(target, fmt.Errorf("%w: got %s under %s", manifest.ErrWrongTarget, got, target))
	}
	c, err := engine.Compile(m)
	if err != nil {
		return h.refuse(target, err)
	}
	if persist { // from a source: on disk before it is served
		h.persistFull(target, sm)
	}
	e := &Env{Target: target, Manifest: m, Compiled: c, Held: ver, LoadedAt: h.cfg.Now()}
	h.swap(e)
	if persist {
		h.Confirm(target)
	}
	h.notify(Update{Env: e, Received: received})
	h.updates.WithLabelValues("full").Inc()
	h.log.Info("manifest loaded", "environment", target, "version", m.GetVersion(), "key_id", sm.GetKeyId())
	return nil
}

// adopt records sm as the signed copy of cur (built from a delta) when sm verifies
// and carries exactly cur's manifest. It reports whether it did.
func (h *Holder) adopt(cur *Env, sm *manifestv1.SignedManifest, received time.Time) bool {
	ver, err := h.cfg.Verifier.Open(sm)
	if err != nil || ver.Format() != 1 || ver.Number() != cur.Version() || manifest.Target(ver.Manifest()) != cur.Target {
		return false
	}
	payload, err := manifest.Encode(cur.Manifest)
	if err != nil || !bytes.Equal(payload, sm.GetPayload()) {
		return false
	}
	h.persistFull(cur.Target, sm)
	next := *cur
	next.Held = ver
	h.swap(&next)
	h.Confirm(cur.Target)
	h.notify(Update{Env: &next, Adopted: true, Received: received})
	return true
}

// OfferDelta verifies sd and applies it when it starts at the version held. It
// returns nil when applied or already superseded, ErrGap (possibly wrapping the
// refusal) when the caller should re-read the full manifest, ErrNotServed for
// another environment, and otherwise the (counted and logged) refusal.
func (h *Holder) OfferDelta(sd *manifestv1.SignedDelta) error {
	return h.offerDelta(sd, true)
}

func (h *Holder) offerDelta(sd *manifestv1.SignedDelta, persist bool) error {
	received := h.cfg.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	target, to, err := manifest.DeltaTarget(sd)
	if err != nil {
		return h.refuse("", err)
	}
	if !h.Serves(target) {
		return ErrNotServed
	}
	cur := h.State().Env(target)
	if cur == nil {
		return ErrGap
	}
	if to <= cur.Version() {
		return nil // superseded (Verifier.Apply would say stale)
	}
	// Format 2 costs what the delta changes: the header's signature, the changed
	// entries' digests, and only the changed flags and segments are compiled.
	next, d, err := h.cfg.Verifier.Apply(cur.Held, sd)
	switch {
	case errors.Is(err, manifest.ErrStale):
		return nil
	case errors.Is(err, manifest.ErrNotNext):
		return fmt.Errorf("%w: %w", ErrGap, err)
	case err != nil:
		return fmt.Errorf("%w: %w", ErrGap, h.refuse(target, err))
	}
	m := next.Manifest()
	c, err := cur.Compiled.Update(m, d)
	if err != nil {
		return h.refuse(target, err)
	}
	if persist {
		h.persistDelta(target, sd, next) // on disk before it is served
	}
	e := &Env{Target: target, Manifest: m, Compiled: c, Held: next, LoadedAt: h.cfg.Now()}
	h.swap(e)
	h.Confirm(target)
	h.notify(Update{Env: e, Delta: sd, Received: received})
	h.updates.WithLabelValues("delta").Inc()
	h.log.Info("manifest delta applied", "environment", target, "from_version", d.GetFromVersion(), "version", m.GetVersion())
	return nil
}

// swap publishes a new state with e in place. Called with h.mu held.
func (h *Holder) swap(e *Env) {
	cur := h.State()
	envs := make(map[string]*Env, len(cur.envs)+1)
	for t, x := range cur.envs {
		envs[t] = x
	}
	envs[e.Target] = e
	targets := make([]string, 0, len(envs))
	for t := range envs {
		targets = append(targets, t)
	}
	slices.Sort(targets)
	ms := make([]*manifestv1.Manifest, len(targets))
	for i, t := range targets {
		ms[i] = envs[t].Manifest
	}
	h.state.Store(&State{envs: envs, keys: auth.BuildIndex(ms), expected: cur.expected, heads: cur.heads})
}

// notify hands u (with the state just swapped in) to the listener. Called with
// h.mu held, so listeners see updates in order.
func (h *Holder) notify(u Update) {
	if h.cfg.OnUpdate == nil {
		return
	}
	u.State = h.State()
	h.cfg.OnUpdate(u)
}

// refuse counts and logs a refusal and returns it.
func (h *Holder) refuse(target string, err error) error {
	reason := refusalReason(err)
	h.refusals.WithLabelValues(reason).Inc()
	held := uint64(0)
	if e := h.State().Env(target); e != nil {
		held = e.Version()
	}
	h.log.Warn("manifest refused", "environment", target, "reason", reason, "held_version", held, "err", err)
	return err
}

func refusalReason(err error) string {
	switch {
	case errors.Is(err, manifest.ErrBadSignature):
		return ReasonBadSignature
	case errors.Is(err, manifest.ErrUnknownKey):
		return ReasonUnknownKey
	case errors.Is(err, manifest.ErrExpired):
		return ReasonExpired
	case errors.Is(err, manifest.ErrStale):
		return ReasonStale
	case errors.Is(err, manifest.ErrWrongTarget):
		return ReasonWrongTarget
	case errors.Is(err, manifest.ErrMalformed):
		return ReasonMalformed
	default:
		return ReasonUncompilable
	}
}

// Path returns where the local copy of target lives, or "" when target is not a
// safe org/project/environment triple.
func Path(dataDir, target string) string {
	parts := strings.Split(target, "/")
	if len(parts) != 3 {
		return ""
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `\`+"\x00") {
			return ""
		}
	}
	return filepath.Join(dataDir, parts[0], parts[1], parts[2]+FileExt)
}

// collector exports, at scrape time, the version and age of every held manifest
// and the freshness of every known environment.
type collector struct{ h *Holder }

var (
	versionDesc = prometheus.NewDesc("flagforge_evaluator_manifest_version",
		"Version of the manifest served, per environment.", []string{"environment"}, nil)
	ageDesc = prometheus.NewDesc("flagforge_evaluator_manifest_age_seconds",
		"Seconds since the manifest served was issued, per environment.", []string{"environment"}, nil)
	confirmedDesc = prometheus.NewDesc("flagforge_evaluator_source_confirmed_age_seconds",
		"Seconds since the source last confirmed the version served (a publish, a heartbeat or a re-read), per environment.",
		[]string{"environment"}, nil)
	upDesc = prometheus.NewDesc("flagforge_evaluator_source_up",
		"1 while the manifest source (sync stream or Redis) is reachable, 0 otherwise; per environment.",
		[]string{"environment"}, nil)
	lagDesc = prometheus.NewDesc("flagforge_evaluator_manifest_version_lag",
		"Versions between the head the source announced and the version served (0: caught up), per environment.",
		[]string{"environment"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{versionDesc, ageDesc, confirmedDesc, upDesc, lagDesc} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.h.State()
	now := c.h.cfg.Now()
	for t, e := range st.envs {
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(e.Version()), t)
		ch <- prometheus.MustNewConstMetric(ageDesc, prometheus.GaugeValue, now.Sub(e.Manifest.GetIssuedAt().AsTime()).Seconds(), t)
	}
	f := c.h.Freshness()
	up := 0.0
	if f.SourceUp {
		up = 1
	}
	for _, e := range f.Environments {
		lag := 0.0
		if e.Head > e.Version {
			lag = float64(e.Head - e.Version)
		}
		ch <- prometheus.MustNewConstMetric(confirmedDesc, prometheus.GaugeValue, e.ConfirmedAgeSeconds, e.Environment)
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, e.Environment)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, lag, e.Environment)
	}
}
