// Package publisher turns committed changes (the outbox) into signed manifest
// versions and distributes them.
//
// One publisher is active among the control-plane replicas (Elector: a PostgreSQL
// session advisory lock on a dedicated connection; Local for SQLite). A new leader
// takes the next fencing epoch (store.Publishing.NextPublisherEpoch); every
// manifest it stores records the epoch, and the transaction that stores it checks
// that the epoch is still current, so a former leader that has not noticed its
// loss cannot write.
//
// For each batch of outbox rows the publisher resolves the affected environments,
// assembles each one's content (store.Manifests.EnvironmentManifest), and when it
// differs from the latest version signs the next version (gapless, chained by the
// digest of the previous payload) and stores all new versions together with the
// outbox rows marked published, in one transaction. Several quick changes fold into
// one version; a change is never lost because its row is only marked in the
// transaction that stores a manifest reflecting it. After the commit the versions
// go to the in-process fan-out (sync streams), to Redis (optional, in the
// background, never blocking the database) and to object storage (snapshots).
//
// Manifests expire (Config.Lifetime); one with less than half its lifetime left is
// re-signed as a new version with the same content.
package publisher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Store is what the publisher needs from storage.
type Store interface {
	EnvironmentManifest(ctx context.Context, ref store.EnvRef, now time.Time) (*manifestv1.Manifest, error)
	EnvironmentEntries(ctx context.Context, ref store.EnvRef, flags, segments []string, now time.Time) (*store.EnvEntries, error)
	PendingOutbox(ctx context.Context, limit int) ([]store.OutboxEvent, error)
	store.Publishing
}

// Deps are the publisher's collaborators. Store and Signer are required.
type Deps struct {
	Store  Store
	Signer *manifest.Signer
	// Elector decides leadership; nil: Local (single process, SQLite).
	Elector Elector
	// Hub receives every version this process publishes or learns about (sync
	// streams); nil: none.
	Hub *fanout.Hub
	// Redis, when set, receives the latest version of each environment.
	Redis redis.UniversalClient
	// Snapshots, when set, receives every version.
	Snapshots snapshot.Store
	// Metrics registers the publisher's metrics; nil: not registered.
	Metrics prometheus.Registerer
	Logger  *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Publisher publishes manifests; see the package comment.
type Publisher struct {
	cfg   Config
	d     Deps
	m     *metrics
	log   *slog.Logger
	now   func() time.Time
	wake  chan struct{}
	redis *redisSink
	snaps chan snapJob
	// state is the latest version of each environment published in this
	// leadership (state.go); only the leading goroutine uses it.
	state states
}

type snapJob struct {
	target  string
	version uint64
	data    []byte
}

// New checks cfg (defaults applied) and deps and returns a publisher; Run starts it.
func New(cfg Config, d Deps) (*Publisher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.Signer == nil {
		return nil, errors.New("publisher: a store and a signer are required")
	}
	if d.Elector == nil {
		d.Elector = Local{}
	}
	p := &Publisher{cfg: cfg, d: d, log: d.Logger, now: d.Now, wake: make(chan struct{}, 1),
		snaps: make(chan snapJob, cfg.SnapshotQueue)}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.log = p.log.With("component", "publisher")
	if p.now == nil {
		p.now = time.Now
	}
	m, err := newMetrics(d.Metrics)
	if err != nil {
		return nil, fmt.Errorf("publisher: metrics: %w", err)
	}
	p.m = m
	if d.Redis != nil {
		p.redis = &redisSink{c: d.Redis, keys: rediskeys.Keys{Prefix: cfg.RedisPrefix}, reload: p.latestForRedis,
			stored: p.storedForRedis, latest: p.latestItemForRedis, m: m,
			log: p.log, min: cfg.RetryMin, max: cfg.RetryMax, pending: map[string]redisItem{}, kick: make(chan struct{}, 1)}
	}
	return p, nil
}

// Notify wakes the publisher (the SQLite store's commit hook; never blocks).
func (p *Publisher) Notify() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Run publishes until ctx ends (then it returns nil): it waits for leadership,
// publishes while leading, and goes back to standby when leadership is lost.
func (p *Publisher) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	if p.redis != nil {
		p.redis.requestResync()
		g.Go(func() error { p.redis.run(ctx); return nil })
	}
	if p.d.Snapshots != nil {
		g.Go(func() error { p.snapshotLoop(ctx); return nil })
	}
	g.Go(func() error {
		sig := Signals{Wake: p.Notify, Stored: func(payload string) { p.followStored(ctx, payload) }}
		for ctx.Err() == nil {
			lead, release, err := p.d.Elector.Acquire(ctx, sig)
			if err != nil {
				if ctx.Err() != nil {
					return nil //nolint:nilerr // shutting down: Acquire reports the cancellation
				}
				return err
			}
			err = p.lead(lead)
			release()
			p.m.leader.Set(0)
			if err != nil && ctx.Err() == nil {
				p.log.ErrorContext(ctx, "publisher stopped leading", "err", err)
				sleep(ctx, p.cfg.RetryMin)
			}
		}
		return nil
	})
	return g.Wait()
}

// errFenced means another publisher took over.
var errFenced = errors.New("publisher: fenced off by a newer leader")

func (p *Publisher) lead(ctx context.Context) error {
	epoch, err := p.d.Store.NextPublisherEpoch(ctx)
	if err != nil {
		return err
	}
	p.m.leader.Set(1)
	p.log.InfoContext(ctx, "publisher is the leader", "epoch", epoch, "key_id", p.d.Signer.KeyID())
	// A previous leadership's state may be behind what another leader stored
	// since: start from the database.
	p.state = states{}
	p.reconcile(ctx)
	// Pruning runs beside publishing (it only deletes rows already published, so
	// it never contends with a publish transaction) and stops with leadership.
	pruneCtx, stopPruning := context.WithCancel(ctx)
	pruned := make(chan struct{}, 2)
	go func() { defer func() { pruned <- struct{}{} }(); p.pruneLoop(pruneCtx) }()
	go func() { defer func() { pruned <- struct{}{} }(); p.snapshotPruneLoop(pruneCtx) }()
	defer func() { stopPruning(); <-pruned; <-pruned }()
	poll := time.NewTicker(p.cfg.PollInterval)
	defer poll.Stop()
	nextResign := time.Time{}
	backoff := p.cfg.RetryMin
	for {
		err := p.drain(ctx, epoch)
		if err == nil && !p.now().Before(nextResign) {
			err = p.resign(ctx, epoch)
			if err == nil {
				nextResign = p.now().Add(p.cfg.ResignCheck)
			}
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errFenced):
			return err
		case err != nil:
			p.log.ErrorContext(ctx, "publish failed; retrying", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, p.cfg.RetryMax)
			continue
		}
		backoff = p.cfg.RetryMin
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
		case <-poll.C:
		}
	}
}

// built is a new version ready to be committed.
type built struct {
	stored *store.StoredManifest
	delta  *manifestv1.SignedDelta
	size   int
	// state is the environment's state once the version is stored.
	state *envState
}

// drain publishes until the outbox is empty.
func (p *Publisher) drain(ctx context.Context, epoch uint64) error {
	for {
		events, err := p.d.Store.PendingOutbox(ctx, p.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(events) == 0 {
			p.m.outboxLag.Set(0)
			return nil
		}
		now := p.now()
		p.m.outboxLag.Set(now.Sub(events[0].Created).Seconds())
		targets, chs, err := p.targets(ctx, events)
		if err != nil {
			return err
		}
		var out []*built
		for _, ref := range targets {
			b, err := p.build(ctx, ref, epoch, chs[ref])
			if err != nil {
				return fmt.Errorf("build %s/%s/%s: %w", ref.Org, ref.Project, ref.Environment, err)
			}
			if b != nil {
				out = append(out, b)
			}
		}
		ids := make([]int64, len(events))
		for i, e := range events {
			ids[i] = e.ID
		}
		if err := p.commit(ctx, epoch, out, ids); err != nil {
			return err
		}
		done := p.now()
		for _, e := range events {
			p.m.latency.Observe(done.Sub(e.Created).Seconds())
		}
		if len(events) < p.cfg.BatchSize {
			return nil
		}
	}
}

// targets resolves outbox rows to environments, each once, with what the rows
// say changed in each (changes.go). A row without an environment applies to
// every environment of its project (or organization).
func (p *Publisher) targets(ctx context.Context, events []store.OutboxEvent) ([]store.EnvRef, map[store.EnvRef]*changes, error) {
	chs := map[store.EnvRef]*changes{}
	scopes := map[[2]string][]store.EnvRef{}
	var out []store.EnvRef
	add := func(r store.EnvRef, e store.OutboxEvent) {
		c := chs[r]
		if c == nil {
			c = &changes{}
			chs[r] = c
			out = append(out, r)
		}
		c.add(e)
	}
	for _, e := range events {
		if ignored(e) {
			continue
		}
		if e.Environment != "" && e.Project != "" {
			add(store.EnvRef{Org: e.Org, Project: e.Project, Environment: e.Environment}, e)
			continue
		}
		scope := [2]string{e.Org, e.Project}
		refs, ok := scopes[scope]
		if !ok {
			var err error
			if refs, err = p.d.Store.PublishTargets(ctx, e.Org, e.Project); err != nil {
				return nil, nil, err
			}
			scopes[scope] = refs
		}
		for _, r := range refs {
			add(r, e)
		}
	}
	return out, chs, nil
}

// build assembles the next version of ref from its state and what changed, or
// nil when the content is unchanged (unless ch.force) or the environment no
// longer exists. Only the named flags and segments are read (plus the SDK keys
// and private attributes, small), unless ch.full or no version is held yet.
func (p *Publisher) build(ctx context.Context, ref store.EnvRef, epoch uint64, ch *changes) (*built, error) {
	now := p.now().UTC().Truncate(time.Microsecond)
	st, err := p.stateOf(ctx, ref)
	if err != nil {
		return nil, err
	}
	if st == nil || ch.full {
		cur, err := p.d.Store.EnvironmentManifest(ctx, ref, now)
		if errors.Is(err, errs.NotFound) {
			return nil, nil // deleted; its last manifest stays until it expires
		}
		if err != nil {
			return nil, err
		}
		manifest.Canonicalize(cur)
		if st == nil {
			return p.first(cur, ref, epoch, now)
		}
		return p.next(st, contentDelta(st.m, cur), ref, epoch, now, ch.force)
	}
	e, err := p.d.Store.EnvironmentEntries(ctx, ref, ch.flagKeys(), ch.segmentKeys(), now)
	if errors.Is(err, errs.NotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// The database's order may follow a collation; a manifest's is by byte.
	canonical := &manifestv1.Manifest{Flags: e.Flags, Segments: e.Segments, SdkKeys: e.SdkKeys}
	manifest.Canonicalize(canonical)
	d := &manifestv1.ManifestDelta{}
	entriesDelta(d, st.m, e, ch.flagKeys(), ch.segmentKeys())
	return p.next(st, d, ref, epoch, now, ch.force)
}

// first signs version 1 of ref.
func (p *Publisher) first(cur *manifestv1.Manifest, ref store.EnvRef, epoch uint64, now time.Time) (*built, error) {
	cur.Version = 1
	return p.sign(cur, nil, ref, epoch, now)
}

// next signs the version after st with the content changes of d, or returns
// nil when d changes nothing and force is off.
func (p *Publisher) next(st *envState, d *manifestv1.ManifestDelta, ref store.EnvRef, epoch uint64, now time.Time, force bool) (*built, error) {
	if emptyDelta(d) && !force {
		return nil, nil
	}
	d.Org, d.Project, d.Environment = ref.Org, ref.Project, ref.Environment
	d.FromVersion, d.ToVersion = st.version, st.version+1
	cur, err := manifest.Apply(st.m, d)
	if err != nil {
		return nil, err
	}
	cur.PreviousDigest = st.digest
	return p.sign(cur, d, ref, epoch, now)
}

// sign completes cur's version fields, signs it (and d, the delta from the
// previous version, when there is one) and returns the version to commit.
func (p *Publisher) sign(cur *manifestv1.Manifest, d *manifestv1.ManifestDelta, ref store.EnvRef, epoch uint64, now time.Time) (*built, error) {
	cur.IssuedAt = timestamppb.New(now)
	cur.ExpiresAt = timestamppb.New(now.Add(p.cfg.Lifetime))
	cur.PublisherEpoch = epoch
	sm, err := p.d.Signer.Manifest(cur)
	if err != nil {
		return nil, err
	}
	digest := manifest.Digest(sm.GetPayload())
	b := &built{size: len(sm.GetPayload()), stored: &store.StoredManifest{
		Ref: ref, Version: cur.Version, Signed: sm, Digest: digest, Epoch: epoch,
		IssuedAt: now, ExpiresAt: now.Add(p.cfg.Lifetime),
	}, state: &envState{version: cur.Version, digest: digest, m: cur}}
	if d != nil {
		d.IssuedAt, d.ExpiresAt, d.PublisherEpoch = cur.IssuedAt, cur.ExpiresAt, epoch
		d.PreviousDigest, d.ResultDigest = cur.PreviousDigest, digest
		if b.delta, err = p.d.Signer.Delta(d); err != nil {
			return nil, err
		}
		// Receivers of the delta rebuild and verify the full signed manifest.
		manifest.WithResult(b.delta, sm)
	}
	return b, nil
}

// commit stores the versions and marks the rows, then distributes.
func (p *Publisher) commit(ctx context.Context, epoch uint64, out []*built, ids []int64) error {
	if len(out) == 0 && len(ids) == 0 {
		return nil
	}
	ms := make([]*store.StoredManifest, len(out))
	for i, b := range out {
		ms[i] = b.stored
	}
	if err := p.d.Store.CommitManifests(ctx, epoch, ms, ids, p.cfg.History); err != nil {
		// The commit may have landed or not: read the states again.
		p.state = states{}
		if errors.Is(err, errs.FailedPrecondition) {
			return fmt.Errorf("%w: %w", errFenced, err)
		}
		return err
	}
	for _, b := range out {
		p.state[b.stored.Ref] = b.state
	}
	for _, b := range out {
		p.m.versions.Inc()
		p.m.size.Observe(float64(b.size))
		p.distribute(b.stored, b.delta)
	}
	return nil
}

// distribute hands a stored version to the hub, Redis and object storage.
func (p *Publisher) distribute(sm *store.StoredManifest, delta *manifestv1.SignedDelta) {
	if p.d.Hub != nil {
		p.d.Hub.Publish(fanout.Event{Ref: sm.Ref, Version: sm.Version, Manifest: sm.Signed, Delta: delta})
	}
	if p.redis == nil && p.d.Snapshots == nil {
		return
	}
	data, err := proto.Marshal(sm.Signed)
	if err != nil {
		p.log.Error("encode signed manifest", "err", err)
		return
	}
	target := target(sm.Ref)
	if p.redis != nil {
		it := redisItem{target: target, version: sm.Version, manifest: data}
		if delta != nil {
			if it.delta, err = proto.Marshal(delta); err != nil {
				p.log.Error("encode signed delta", "err", err)
			}
		}
		p.redis.enqueue(it)
	}
	if p.d.Snapshots != nil {
		select {
		case p.snaps <- snapJob{target: target, version: sm.Version, data: data}:
		default:
			p.m.snapshotErrs.Inc()
			p.log.Error("snapshot queue full; version kept in the database only", "target", target, "version", sm.Version)
		}
	}
}

func target(r store.EnvRef) string { return r.Org + "/" + r.Project + "/" + r.Environment }

// resign publishes a new version of every manifest with less than half its
// lifetime left.
func (p *Publisher) resign(ctx context.Context, epoch uint64) error {
	heads, err := p.d.Store.ManifestHeads(ctx)
	if err != nil {
		return err
	}
	threshold := p.now().Add(p.cfg.Lifetime / 2)
	var out []*built
	for _, h := range heads {
		if h.ExpiresAt.After(threshold) {
			continue
		}
		b, err := p.build(ctx, h.Ref, epoch, &changes{force: true})
		if err != nil {
			return err
		}
		if b != nil {
			out = append(out, b)
		}
		if len(out) >= p.cfg.BatchSize {
			if err := p.commit(ctx, epoch, out, nil); err != nil {
				return err
			}
			out = nil
		}
	}
	return p.commit(ctx, epoch, out, nil)
}

// reconcile runs when leadership starts: a previous leader may have stored
// versions and died before Redis or object storage had them.
func (p *Publisher) reconcile(ctx context.Context) {
	if p.redis != nil {
		p.redis.requestResync()
	}
	if p.d.Snapshots == nil {
		return
	}
	heads, err := p.d.Store.ManifestHeads(ctx)
	if err != nil {
		p.log.WarnContext(ctx, "reconcile snapshots", "err", err)
		return
	}
	for _, h := range heads {
		// Versions a crashed leader stored but did not snapshot: write the stored
		// history that is missing (bounded by the history kept).
		from := uint64(1)
		if h.Version > uint64(p.cfg.History) {
			from = h.Version - uint64(p.cfg.History) + 1
		}
		for v := h.Version; v >= from; v-- {
			if _, err := p.d.Snapshots.Get(ctx, target(h.Ref), v); err == nil {
				break
			}
			sm, err := p.d.Store.GetManifest(ctx, h.Ref, v)
			if err != nil {
				break
			}
			data, err := proto.Marshal(sm.Signed)
			if err != nil {
				break
			}
			select {
			case p.snaps <- snapJob{target: target(h.Ref), version: v, data: data}:
			default:
			}
		}
	}
}

func (p *Publisher) latestForRedis(ctx context.Context) ([]redisItem, error) {
	heads, err := p.d.Store.ManifestHeads(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]redisItem, 0, len(heads))
	for _, h := range heads {
		it, err := p.itemForRedis(ctx, h.Ref)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	return out, nil
}

// itemForRedis is the latest stored version of ref, encoded for Redis.
func (p *Publisher) itemForRedis(ctx context.Context, ref store.EnvRef) (redisItem, error) {
	sm, err := p.d.Store.LatestManifest(ctx, ref)
	if err != nil {
		return redisItem{}, err
	}
	data, err := proto.Marshal(sm.Signed)
	if err != nil {
		return redisItem{}, err
	}
	it := redisItem{target: target(ref), version: sm.Version, manifest: data}
	if d, err := p.deltaFromHistory(ctx, sm); err == nil && d != nil {
		it.delta, _ = proto.Marshal(d)
	}
	return it, nil
}

// latestItemForRedis is itemForRedis for a target "org/project/environment".
func (p *Publisher) latestItemForRedis(ctx context.Context, t string) (redisItem, error) {
	ref, ok := parseTarget(t)
	if !ok {
		return redisItem{}, errs.Invalid("target", "%q is not org/project/environment", t)
	}
	return p.itemForRedis(ctx, ref)
}

// storedForRedis is the stored signed manifest of target at version, encoded as
// the publisher writes it to Redis.
func (p *Publisher) storedForRedis(ctx context.Context, t string, version uint64) ([]byte, error) {
	ref, ok := parseTarget(t)
	if !ok {
		return nil, errs.E(errs.NotFound, "no environment %q", t)
	}
	sm, err := p.d.Store.GetManifest(ctx, ref, version)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(sm.Signed)
}

func parseTarget(t string) (store.EnvRef, bool) {
	parts := strings.Split(t, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return store.EnvRef{}, false
	}
	return store.EnvRef{Org: parts[0], Project: parts[1], Environment: parts[2]}, true
}

// deltaFromHistory signs the delta from the version before sm (nil when none).
func (p *Publisher) deltaFromHistory(ctx context.Context, sm *store.StoredManifest) (*manifestv1.SignedDelta, error) {
	if sm.Version < 2 {
		return nil, nil
	}
	prev, err := p.d.Store.GetManifest(ctx, sm.Ref, sm.Version-1)
	if err != nil {
		return nil, err
	}
	return SignDelta(p.d.Signer, prev.Signed, sm.Signed)
}

// SignDelta diffs two consecutive stored versions and signs the delta, with the
// signature of `to` attached (manifest.WithResult) so that a receiver holds the
// complete signed manifest of the version it applies.
func SignDelta(s *manifest.Signer, from, to *manifestv1.SignedManifest) (*manifestv1.SignedDelta, error) {
	var a, b manifestv1.Manifest
	if err := proto.Unmarshal(from.GetPayload(), &a); err != nil {
		return nil, err
	}
	if err := proto.Unmarshal(to.GetPayload(), &b); err != nil {
		return nil, err
	}
	d, err := manifest.Diff(&a, &b)
	if err != nil {
		return nil, err
	}
	sd, err := s.Delta(d)
	if err != nil {
		return nil, err
	}
	return manifest.WithResult(sd, to), nil
}

// followStored feeds the hub on a standby from the leader's notifications.
func (p *Publisher) followStored(ctx context.Context, payload string) {
	if p.d.Hub == nil {
		return
	}
	t, v, ok := strings.Cut(payload, " ")
	parts := strings.Split(t, "/")
	version, err := strconv.ParseUint(v, 10, 64)
	if !ok || len(parts) != 3 || err != nil {
		return
	}
	ref := store.EnvRef{Org: parts[0], Project: parts[1], Environment: parts[2]}
	sm, err := p.d.Store.GetManifest(ctx, ref, version)
	if err != nil {
		return
	}
	d, _ := p.deltaFromHistory(ctx, sm)
	p.d.Hub.Publish(fanout.Event{Ref: ref, Version: version, Manifest: sm.Signed, Delta: d})
}

// pruneLoop deletes published outbox rows older than the retention, at the start
// of leadership and then every PruneInterval.
func (p *Publisher) pruneLoop(ctx context.Context) {
	tick := time.NewTicker(p.cfg.PruneInterval)
	defer tick.Stop()
	for {
		p.pruneOutbox(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pruneOutbox deletes in batches of PruneBatch rows (one short transaction each)
// until a batch comes back short. A failure is logged and retried next interval:
// pruning never blocks publishing.
func (p *Publisher) pruneOutbox(ctx context.Context) {
	cutoff := p.now().Add(-p.cfg.OutboxRetention)
	var total int64
	for ctx.Err() == nil {
		n, err := p.d.Store.PruneOutbox(ctx, cutoff, p.cfg.PruneBatch)
		total += n
		if err != nil {
			if ctx.Err() == nil {
				p.log.WarnContext(ctx, "pruning published outbox rows failed; retrying next interval", "err", err)
			}
			break
		}
		if n < int64(p.cfg.PruneBatch) {
			break
		}
	}
	if total > 0 {
		p.m.outboxPruned.Add(float64(total))
		p.log.DebugContext(ctx, "pruned published outbox rows", "rows", total, "published_before", cutoff)
	}
}

// snapshotPruneLoop applies the snapshot retention at the start of leadership
// and then every SnapshotPruneInterval, when the snapshot store can prune
// (snapshot.Pruner) and the retention is on. A failure is logged and retried
// next interval.
func (p *Publisher) snapshotPruneLoop(ctx context.Context) {
	pr, ok := p.d.Snapshots.(snapshot.Pruner)
	r, on := p.cfg.SnapshotRetention()
	if !ok || !on {
		return
	}
	tick := time.NewTicker(p.cfg.SnapshotPruneInterval)
	defer tick.Stop()
	for {
		n, err := snapshot.Prune(ctx, pr, r, p.now())
		p.m.snapsPruned.Add(float64(n))
		switch {
		case err != nil && ctx.Err() == nil:
			p.log.WarnContext(ctx, "pruning manifest snapshots failed; retrying next interval", "err", err, "deleted", n)
		case n > 0:
			p.log.InfoContext(ctx, "pruned manifest snapshots", "deleted", n, "keep_versions", r.Keep, "keep_days", r.Days)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *Publisher) snapshotLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-p.snaps:
			backoff := p.cfg.RetryMin
			for attempt := 1; ; attempt++ {
				err := p.d.Snapshots.Put(ctx, j.target, j.version, j.data)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return
				}
				if attempt == 5 {
					p.m.snapshotErrs.Inc()
					p.log.ErrorContext(ctx, "snapshot not written; the version stays in the database history", "target", j.target,
						"version", j.version, "err", err)
					break
				}
				sleep(ctx, backoff)
				backoff = min(backoff*2, p.cfg.RetryMax)
			}
		}
	}
}
