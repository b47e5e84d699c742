package source

import (
	"context"
	"crypto/sha1" //nolint:gosec // see digest
	"encoding/hex"
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
	"github.com/flagforge/flagforge/pkg/rediskeys"
)

// RedisConfig configures the Redis source.
type RedisConfig struct {
	// Client talks to the Redis the publisher writes to (required).
	Client redis.UniversalClient
	// Prefix starts every key and the channel (default "ff:"; names: pkg/rediskeys).
	Prefix string
	// Environments to read; empty: every one in {prefix}envs.
	Environments []string
	// Resync is the period of the full re-read safety net (default 30s).
	Resync time.Duration
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Redis reads manifests from the environments' hashes and follows the change
// channel (names: pkg/rediskeys; docs/manifest-distribution.md). It works on one
// node, through Sentinel and on a Redis Cluster: each read touches one
// environment's hash (one slot), and the channel is a classic pub/sub channel,
// which a cluster delivers to subscribers on every node. While an environment has
// no layout-2 hash it reads the layout-1 one (an upgrade in progress: the
// evaluators go first). Every (re)subscription
// and every Resync period triggers a full re-read; an event applies the hash's
// delta when it starts at the version held and re-reads the manifest otherwise.
// All reads happen on one goroutine, so the holder sees updates in order.
//
// Nothing unsigned decides what is read: the hash's version field (and an event's
// version) is never trusted. Holding a format-2 version, a re-read compares the
// hash's header field (the signed header of the latest version) with the one held
// (headerScript): equal, the source confirmed what is held at the cost of a small
// hash; different, the deltas after the version held (delta:<N>, then delta) are
// applied, and the full manifest is read only when they do not lead to that header.
// Otherwise a re-read asks Redis for the manifest field only when its SHA-1 differs
// from the signed manifest held (readScript), and the signed version inside it
// decides, through the holder's verification.
type Redis struct {
	cfg  RedisConfig
	keys rediskeys.Keys
	sink Sink
	log  *slog.Logger
	// held caches the SHA-1 of the encoded signed manifest held per environment.
	held map[string]heldDigest
}

// heldDigest is the SHA-1 of one held signed manifest.
type heldDigest struct {
	signed *manifestv1.SignedManifest
	sha    string
}

// readScript returns 1 when the hash's manifest field has the SHA-1 in ARGV[1],
// the field itself otherwise (nil when absent): an unchanged manifest costs a hash,
// not a transfer.
var readScript = redis.NewScript(`
local m = redis.call('HGET', KEYS[1], 'manifest')
if not m then return false end
if redis.sha1hex(m) == ARGV[1] then return 1 end
return m
`)

// headerScript returns 1 when the hash's header field has the SHA-1 in ARGV[1], 0
// when it has another, -1 when there is none (a publisher older than format 2).
var headerScript = redis.NewScript(`
local h = redis.call('HGET', KEYS[1], 'header')
if not h then return -1 end
if redis.sha1hex(h) == ARGV[1] then return 1 end
return 0
`)

// maxCatchUp bounds the deltas one re-read applies before reading the full manifest.
const maxCatchUp = 1000

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
	return &Redis{cfg: cfg, keys: rediskeys.Keys{Prefix: cfg.Prefix}, sink: sink, log: cfg.Logger.With("source", "redis"), held: map[string]heldDigest{}}, nil
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

// subscribe follows the channel, turning each (re)subscription into a resync
// request and each message into an event. go-redis redials and resubscribes after
// a failure; we back off between failed attempts.
func (r *Redis) subscribe(ctx context.Context, events chan<- event, resync chan<- struct{}) {
	ps := r.cfg.Client.Subscribe(ctx, r.keys.Channel())
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
				r.sink.SetSourceUp(false)
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
				r.sink.SetSourceUp(false)
				if !failing {
					r.log.Warn("reading manifests from redis failed; serving what is held and retrying", "err", err)
					failing = true
				}
				retry = time.After(bo.Next())
			} else {
				r.sink.SetSourceUp(true)
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
		all, err := r.cfg.Client.SMembers(ctx, r.keys.Envs()).Result()
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

// digest is the SHA-1 of the signed manifest held for target ("" : none, or none
// signed), as Redis's redis.sha1hex computes it over the stored field.
func (r *Redis) digest(target string) string {
	sm := r.sink.Signed(target)
	if sm == nil {
		return ""
	}
	if d, ok := r.held[target]; ok && d.signed == sm {
		return d.sha
	}
	b, err := proto.Marshal(sm)
	if err != nil {
		return ""
	}
	sum := sha1.Sum(b) //nolint:gosec // a change detector matching redis.sha1hex, not a security digest
	d := heldDigest{signed: sm, sha: hex.EncodeToString(sum[:])}
	r.held[target] = d
	return d.sha
}

// readEnv re-reads target: when the manifest field differs from the signed
// manifest held it is offered (verified; its signed version decides), otherwise
// the source has just confirmed what is held. Either way the version then held is
// the source's head. Without a layout-2 hash the layout-1 one is read.
func (r *Redis) readEnv(ctx context.Context, target string) error {
	if done, err := r.catchUp(ctx, target); err != nil || done {
		return err
	}
	digest := r.digest(target)
	res, err := readScript.Run(ctx, r.cfg.Client, []string{r.keys.Env(target)}, digest).Result()
	if errors.Is(err, redis.Nil) {
		res, err = readScript.Run(ctx, r.cfg.Client, []string{r.keys.LegacyEnv(target)}, digest).Result()
	}
	if errors.Is(err, redis.Nil) {
		return nil // not published yet
	}
	if err != nil {
		return err
	}
	if b, ok := res.(string); ok {
		var sm manifestv1.SignedManifest
		if uerr := proto.Unmarshal([]byte(b), &sm); uerr != nil {
			r.log.Warn("ignoring undecodable manifest in redis", "environment", target, "err", uerr)
			return nil // not a Redis failure: nothing to retry
		}
		// A refusal is counted and logged by the sink; the source then names no head.
		if refused := r.sink.Offer(target, &sm); refused != nil {
			r.log.Debug("manifest in redis refused", "environment", target, "err", refused)
			return nil
		}
		// A checkpoint: the deltas after it lead to the latest version.
		if _, err := r.catchUp(ctx, target); err != nil {
			return err
		}
	}
	if v := r.sink.Version(target); v > 0 {
		r.sink.SetHeads(map[string]uint64{target: v}) // also confirms it
	}
	return nil
}

// catchUp, when a format-2 version is held, compares the hash's header with the
// one held and applies the deltas that follow the version held until they match.
// It reports whether the source then confirmed the version held (false: read the
// full manifest, or the hash has no header field).
func (r *Redis) catchUp(ctx context.Context, target string) (bool, error) {
	for range maxCatchUp {
		sh := r.sink.Header(target)
		if sh == nil {
			return false, nil
		}
		b, merr := proto.Marshal(sh)
		if merr != nil {
			return false, nil //nolint:nilerr // not a Redis failure: read the full manifest instead
		}
		sum := sha1.Sum(b) //nolint:gosec // a change detector matching redis.sha1hex, not a security digest
		res, err := headerScript.Run(ctx, r.cfg.Client, []string{r.keys.Env(target)}, hex.EncodeToString(sum[:])).Int()
		if err != nil || res < 0 {
			return false, err
		}
		held := r.sink.Version(target)
		if res == 1 {
			r.sink.SetHeads(map[string]uint64{target: held}) // also confirms it
			return true, nil
		}
		vals, err := r.cfg.Client.HMGet(ctx, r.keys.Env(target), "delta:"+strconv.FormatUint(held+1, 10), "delta").Result()
		if err != nil {
			return false, err
		}
		for _, v := range vals {
			if s, ok := v.(string); ok {
				var sd manifestv1.SignedDelta
				if proto.Unmarshal([]byte(s), &sd) == nil && r.sink.OfferDelta(&sd) == nil && r.sink.Version(target) > held {
					break
				}
			}
		}
		if r.sink.Version(target) == held {
			return false, nil // no delta leads on: read the full manifest
		}
	}
	return false, nil
}

// handle applies one event: the hash's delta when it starts at the version held,
// then a re-read (which costs a hash comparison when the delta brought the signed
// manifest of the new version with it). The event's version is only a wake-up.
func (r *Redis) handle(ctx context.Context, ev event) error {
	if !r.sink.Serves(ev.target) || (len(r.cfg.Environments) > 0 && !slices.Contains(r.cfg.Environments, ev.target)) {
		return nil
	}
	if r.sink.Version(ev.target) > 0 {
		b, err := r.cfg.Client.HGet(ctx, r.keys.Env(ev.target), "delta").Bytes()
		if errors.Is(err, redis.Nil) {
			b, err = r.cfg.Client.HGet(ctx, r.keys.LegacyEnv(ev.target), "delta").Bytes()
		}
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return err
		default:
			var sd manifestv1.SignedDelta
			if proto.Unmarshal(b, &sd) == nil {
				_ = r.sink.OfferDelta(&sd) // a gap or refusal: the re-read below fixes it
			}
		}
	}
	return r.readEnv(ctx, ev.target)
}
