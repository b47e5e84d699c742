package source

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// RedisConfig configures the Redis source.
type RedisConfig struct {
	// Client talks to the Redis the publisher writes to (required).
	Client redis.UniversalClient
	// Prefix starts every key and the channel (default "ff:").
	Prefix string
	// Environments to read; empty: every one in {prefix}envs.
	Environments []string
	// Resync is the period of the full re-read safety net (default 30s).
	Resync time.Duration
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Redis reads manifests from the {prefix}env:{target} hashes and follows the
// {prefix}manifests channel (docs/manifest-distribution.md). Every (re)subscription
// and every Resync period triggers a full re-read; an event with a version newer
// than the one held applies the hash's delta when it starts at that version and
// reads the full manifest otherwise. All reads happen on one goroutine, so the
// holder sees updates in order.
type Redis struct {
	cfg  RedisConfig
	sink Sink
	log  *slog.Logger
}

// NewRedis returns a Redis source feeding sink.
func NewRedis(cfg RedisConfig, sink Sink) (*Redis, error) {
	if cfg.Client == nil {
		return nil, errors.New("source: redis client is required")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "ff:"
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Redis{cfg: cfg, sink: sink, log: cfg.Logger.With("source", "redis")}, nil
}

// event is one change notification: target is at version.
type event struct {
	target  string
	version uint64
}

// Run follows Redis until ctx ends.
func (r *Redis) Run(ctx context.Context) error {
	events := make(chan event, 1024)
	resync := make(chan struct{}, 1)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { r.subscribe(ctx, events, resync); return nil })
	g.Go(func() error { r.process(ctx, events, resync); return nil })
	return g.Wait()
}

func (r *Redis) key(target string) string { return r.cfg.Prefix + "env:" + target }

// subscribe follows the channel, turning each (re)subscription into a resync
// request and each message into an event. go-redis redials and resubscribes after
// a failure; we back off between failed attempts.
func (r *Redis) subscribe(ctx context.Context, events chan<- event, resync chan<- struct{}) {
	ps := r.cfg.Client.Subscribe(ctx, r.cfg.Prefix+"manifests")
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() }) // unblocks Receive
	defer stop()
	bo := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	failing := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, r.cfg.Resync)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check the connection is alive (a dead one reconnects).
				_ = ps.Ping(ctx)
				continue
			}
			if !failing {
				r.log.Warn("redis subscription lost; retrying", "err", err)
				failing = true
			}
			if !sleep(ctx, bo.Next()) {
				return
			}
			continue
		}
		bo.Reset()
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if failing {
					r.log.Info("redis subscription restored")
					failing = false
				}
				signal(resync)
			}
		case *redis.Message:
			ev, ok := parseEvent(m.Payload)
			if !ok {
				r.log.Warn("ignoring malformed manifest event", "payload", m.Payload)
				continue
			}
			select {
			case events <- ev:
			default: // the processor is far behind: a full re-read covers everything
				signal(resync)
			}
		}
	}
}

func signal(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// parseEvent reads "{org}/{project}/{environment} {version}".
func parseEvent(s string) (event, bool) {
	target, v, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || strings.Count(target, "/") != 2 {
		return event{}, false
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return event{}, false
	}
	return event{target: target, version: n}, true
}

// process applies events and re-reads, one at a time.
func (r *Redis) process(ctx context.Context, events <-chan event, resync <-chan struct{}) {
	tick := time.NewTicker(r.cfg.Resync)
	defer tick.Stop()
	bo := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	pending, failing := true, false
	var retry <-chan time.Time
	for {
		if pending && retry == nil {
			if err := r.readAll(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				if !failing {
					r.log.Warn("reading manifests from redis failed; serving what is held and retrying", "err", err)
					failing = true
				}
				retry = time.After(bo.Next())
			} else {
				if failing {
					r.log.Info("reading manifests from redis recovered")
					failing = false
				}
				pending = false
				bo.Reset()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-retry:
			retry = nil
		case <-resync:
			pending = true
		case <-tick.C:
			pending = true
		case ev := <-events:
			if err := r.handle(ctx, ev); err != nil && ctx.Err() == nil {
				r.log.Warn("applying manifest event failed; re-reading", "environment", ev.target, "version", ev.version, "err", err)
				pending = true
			}
		}
	}
}

// readAll re-reads every environment served. Only Redis failures are returned.
func (r *Redis) readAll(ctx context.Context) error {
	targets := r.cfg.Environments
	if len(targets) == 0 {
		all, err := r.cfg.Client.SMembers(ctx, r.cfg.Prefix+"envs").Result()
		if err != nil {
			return err
		}
		slices.Sort(all)
		targets = slices.DeleteFunc(all, func(t string) bool { return !r.sink.Serves(t) })
		r.sink.Expect(targets)
	}
	for _, t := range targets {
		if err := r.readEnv(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

// readEnv offers target's full manifest when it would change what is held.
func (r *Redis) readEnv(ctx context.Context, target string) error {
	v, err := r.cfg.Client.HGet(ctx, r.key(target), "version").Uint64()
	if errors.Is(err, redis.Nil) {
		return nil // not published yet
	}
	if err != nil {
		return err
	}
	if !r.sink.NeedsManifest(target, v) {
		return nil
	}
	b, err := r.cfg.Client.HGet(ctx, r.key(target), "manifest").Bytes()
	if errors.Is(err, redis.Nil) {
		return nil
	}
	if err != nil {
		return err
	}
	var sm manifestv1.SignedManifest
	if err := proto.Unmarshal(b, &sm); err != nil {
		r.log.Warn("ignoring undecodable manifest in redis", "environment", target, "err", err)
		return nil
	}
	_ = r.sink.Offer(target, &sm) // a refusal is counted and logged by the sink
	return nil
}

// handle applies one event: the hash's delta when it starts at the version held
// (then the full signed manifest of that version, for snapshots), otherwise the
// full manifest.
func (r *Redis) handle(ctx context.Context, ev event) error {
	if !r.sink.Serves(ev.target) || (len(r.cfg.Environments) > 0 && !slices.Contains(r.cfg.Environments, ev.target)) {
		return nil
	}
	held := r.sink.Version(ev.target)
	if ev.version <= held {
		return nil
	}
	if held > 0 {
		b, err := r.cfg.Client.HGet(ctx, r.key(ev.target), "delta").Bytes()
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			var sd manifestv1.SignedDelta
			if proto.Unmarshal(b, &sd) == nil && r.sink.OfferDelta(&sd) == nil && r.sink.Version(ev.target) >= ev.version {
				// The delta is served (and streamed) already; now fetch the signed
				// manifest of that version too, so new stream subscribers and pollers
				// can be given a snapshot of it (the evaluator never signs).
				return r.readEnv(ctx, ev.target)
			}
		}
	}
	return r.readEnv(ctx, ev.target)
}
