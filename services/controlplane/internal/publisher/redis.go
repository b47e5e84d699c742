package publisher

import (
	"context"
	"crypto/sha1" //nolint:gosec // see verifySkip
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/pkg/rediskeys"
)

// DefaultRedisPrefix starts every Redis key and the channel unless configured
// otherwise; the evaluator's FLAGFORGE_REDIS_KEY_PREFIX has the same meaning and
// default, so both sides agree on names (pkg/rediskeys).
const DefaultRedisPrefix = rediskeys.DefaultPrefix

// publishScript writes the hash and publishes the event, atomically and only when
// the version is newer than the one in Redis: a fenced-off publisher finishing
// late can never move Redis back. Its only key is the environment's hash, so on a
// Redis Cluster it runs on that environment's slot (the set and the synced
// marker, single keys elsewhere, are written by separate commands).
//
// KEYS: hash. ARGV: version, manifest, delta ("" = none), target, channel.
// Returns 1 when written, 0 when Redis held the same or a newer version, plus 4
// when the hash had no version (new, or lost by Redis).
//
// The hash's version field is not signed, so a skip is never taken on its word:
// the caller checks a skipped write against the database (redisSink.verifySkip)
// and repairs a hash whose index or manifest the database does not back.
var publishScript = redis.NewScript(`
local v = redis.call('HGET', KEYS[1], 'version')
local absent = 0
if not v then absent = 4 end
local cur = tonumber(v or '0')
if cur >= tonumber(ARGV[1]) then return absent end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'delta')
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'manifest', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'manifest', ARGV[2], 'delta', ARGV[3])
end
redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. ARGV[1])
return 1 + absent
`)

// repairScript re-writes a hash found inconsistent with the database, only when the
// manifest field still has the SHA-1 the caller inspected (compare-and-set: a
// publisher that wrote meanwhile is never moved back), then announces it.
//
// KEYS: hash. ARGV: expected SHA-1 of the manifest field ("" = absent), version,
// manifest, delta ("" = none), target, channel. Returns 1 when written.
var repairScript = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'manifest')
local sha = ''
if cur then sha = redis.sha1hex(cur) end
if sha ~= ARGV[1] then return 0 end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[1], 'delta')
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'manifest', ARGV[3])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[2], 'manifest', ARGV[3], 'delta', ARGV[4])
end
redis.call('PUBLISH', ARGV[6], ARGV[5] .. ' ' .. ARGV[2])
return 1
`)

// redisItem is the latest version of one environment, waiting to be written.
type redisItem struct {
	target   string
	version  uint64
	manifest []byte
	delta    []byte
}

// redisSink writes the latest version of each environment to Redis in the
// background. It coalesces (only the newest pending version of an environment is
// written), retries with backoff, and after a failure re-reads the latest of
// every environment from the database (reload) once Redis answers again. A Redis
// outage therefore never blocks publishing to the database.
//
// A Redis that loses the data without any write failing (restarted empty or
// flushed) is noticed through the synced marker, set before each full re-write
// (checked after every batch of writes, and by a probe every max interval while
// idle), and, on a cluster where only some masters lost theirs, through a write
// that finds no hash for an environment this process has written before. Either
// way everything is reloaded and re-written.
//
// Each full re-write also finishes the migration from layout 1 (pkg/rediskeys):
// it deletes the layout-1 marker, and the first write of each environment after
// it deletes that environment's layout-1 hash (once the layout-2 one is written).
type redisSink struct {
	c      redis.UniversalClient
	keys   rediskeys.Keys
	reload func(ctx context.Context) ([]redisItem, error)
	// stored returns the encoded signed manifest the database holds for target at
	// version (errs.NotFound: none); latest the newest version of target as an item.
	stored func(ctx context.Context, target string, version uint64) ([]byte, error)
	latest func(ctx context.Context, target string) (redisItem, error)
	m      *metrics
	log    *slog.Logger
	min    time.Duration
	max    time.Duration

	mu      sync.Mutex
	pending map[string]redisItem
	resync  bool
	kick    chan struct{}
	// written holds the environments written since the last full re-write:
	// finding one of them absent means data loss.
	written map[string]bool
}

func (s *redisSink) enqueue(it redisItem) {
	s.mu.Lock()
	if old, ok := s.pending[it.target]; !ok || old.version < it.version {
		s.pending[it.target] = it
	}
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// requestResync asks for the latest of every environment to be re-written.
func (s *redisSink) requestResync() {
	s.mu.Lock()
	s.resync = true
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *redisSink) run(ctx context.Context) {
	backoff := s.min
	tick := time.NewTicker(s.max)
	defer tick.Stop()
	for {
		if err := s.flush(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.m.redisErrors.Inc()
			s.log.WarnContext(ctx, "redis write failed; retrying (the database is unaffected)", "err", err, "retry_in", backoff)
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, s.max)
			continue
		}
		backoff = s.min
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-tick.C:
			s.probe(ctx)
		}
	}
}

// probe requests a resync when Redis lost the synced marker (it restarted empty
// or was flushed), or when it does not answer (it is re-written once it does).
func (s *redisSink) probe(ctx context.Context) {
	s.mu.Lock()
	check := !s.resync
	s.mu.Unlock()
	if !check {
		return
	}
	n, err := s.c.Exists(ctx, s.keys.Synced()).Result()
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		s.m.redisErrors.Inc()
		s.log.WarnContext(ctx, "redis probe failed; every environment is re-written once it answers", "err", err)
	case n == 0:
		s.log.WarnContext(ctx, "redis lost the manifests (restarted empty or flushed); re-writing every environment")
	default:
		return
	}
	s.requestResync()
}

func (s *redisSink) flush(ctx context.Context) error {
	s.mu.Lock()
	resync := s.resync
	s.mu.Unlock()
	if resync {
		if err := s.c.Ping(ctx).Err(); err != nil {
			return err
		}
		items, err := s.reload(ctx)
		if err != nil {
			return err
		}
		// Marker first: a Redis that loses it while the items are being written
		// reports it after the next write.
		if err := s.c.Set(ctx, s.keys.Synced(), "1", 0).Err(); err != nil {
			return err
		}
		if err := s.c.Del(ctx, s.keys.LegacySynced()).Err(); err != nil {
			return err
		}
		s.mu.Lock()
		s.resync = false
		s.written = map[string]bool{}
		s.mu.Unlock()
		for _, it := range items {
			s.enqueue(it)
		}
	}
	wrote := false
	for {
		s.mu.Lock()
		var it redisItem
		found := false
		for k, v := range s.pending {
			it, found = v, true
			delete(s.pending, k)
			break
		}
		s.mu.Unlock()
		if !found {
			break
		}
		if err := s.write(ctx, it); err != nil {
			s.enqueue(it)
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
			return err
		}
		wrote = true
	}
	if !wrote {
		return nil
	}
	n, err := s.c.Exists(ctx, s.keys.Synced()).Result()
	if err != nil {
		return err
	}
	if n == 0 {
		s.log.WarnContext(ctx, "redis lost the manifests (restarted empty or flushed); re-writing every environment")
		s.requestResync()
	}
	return nil
}

// write writes one item: the set member first (an evaluator that finds a member
// without a hash waits for it), then the hash and the event in one script, then,
// on the environment's first write since the full re-write, the deletion of its
// layout-1 hash.
func (s *redisSink) write(ctx context.Context, it redisItem) error {
	if err := s.c.SAdd(ctx, s.keys.Envs(), it.target).Err(); err != nil {
		return err
	}
	res, err := publishScript.Run(ctx, s.c, []string{s.keys.Env(it.target)},
		strconv.FormatUint(it.version, 10), it.manifest, it.delta, it.target, s.keys.Channel()).Int()
	if err != nil {
		return err
	}
	s.mu.Lock()
	first := !s.written[it.target]
	lost := res&4 != 0 && !first
	if s.written == nil {
		s.written = map[string]bool{}
	}
	s.written[it.target] = true
	s.mu.Unlock()
	if lost {
		s.log.WarnContext(ctx, "redis lost an environment's manifest (a node restarted empty or was flushed); re-writing every environment",
			"environment", it.target)
		s.requestResync()
	}
	if res&1 == 0 && s.stored != nil {
		if err := s.verifySkip(ctx, it); err != nil {
			return err
		}
	}
	if first {
		if err := s.c.Unlink(ctx, s.keys.LegacyEnv(it.target)).Err(); err != nil {
			s.mu.Lock()
			delete(s.written, it.target) // deleted by the retry
			s.mu.Unlock()
			return err
		}
	}
	return nil
}

// verifySkip checks a write the script skipped because the hash's version field
// claims the same or a newer version. The skip stands only when the database holds
// exactly the hash's manifest at the version the field names (a newer publisher
// wrote it, or this version was written already). Otherwise the field or the
// manifest was forged or corrupted: the hash is re-written from the database's
// latest version (compare-and-set), logged and counted.
func (s *redisSink) verifySkip(ctx context.Context, it redisItem) error {
	key := s.keys.Env(it.target)
	vals, err := s.c.HMGet(ctx, key, "version", "manifest").Result()
	if err != nil {
		return err
	}
	field, _ := vals[0].(string)
	cur, _ := vals[1].(string)
	claimed, perr := strconv.ParseUint(field, 10, 64)
	if perr == nil && cur != "" {
		want, err := s.stored(ctx, it.target, claimed)
		switch {
		case err == nil && string(want) == cur:
			return nil // consistent: the database backs what Redis holds
		case err != nil && !errors.Is(err, errs.NotFound):
			return err
		}
	}
	latest, err := s.latest(ctx, it.target)
	if err != nil {
		return err
	}
	sha := ""
	if cur != "" {
		sum := sha1.Sum([]byte(cur)) //nolint:gosec // compare-and-set token matching Redis's redis.sha1hex, not a security digest
		sha = hex.EncodeToString(sum[:])
	}
	n, err := repairScript.Run(ctx, s.c, []string{key}, sha,
		strconv.FormatUint(latest.version, 10), latest.manifest, latest.delta, latest.target, s.keys.Channel()).Int()
	if err != nil {
		return err
	}
	if n == 1 {
		s.m.redisRepairs.Inc()
		s.log.WarnContext(ctx, "redis environment hash was not backed by the database (forged or corrupt version index or manifest); repaired",
			"environment", it.target, "redis_version_field", field, "version", latest.version)
	}
	return nil
}
