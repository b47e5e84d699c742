package publisher

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis layout (docs/manifest-distribution.md), each name preceded by the
// configured prefix.
const (
	redisEnvKey   = "ff:env:"
	redisEnvsKey  = "ff:envs"
	redisChannel  = "ff:manifests"
	redisSetField = "manifest"
)

// RedisKeys names the Redis keys and channel for a prefix.
type RedisKeys struct{ Prefix string }

// Env is the hash of target ("org/project/environment").
func (k RedisKeys) Env(target string) string { return k.Prefix + redisEnvKey + target }

// Envs is the set of targets.
func (k RedisKeys) Envs() string { return k.Prefix + redisEnvsKey }

// Channel is the pub/sub channel of change events.
func (k RedisKeys) Channel() string { return k.Prefix + redisChannel }

// publishScript writes the hash and the set and publishes the event, atomically and
// only when the version is newer than the one in Redis: a fenced-off publisher
// finishing late can never move Redis back.
//
// KEYS: hash, set. ARGV: version, manifest, delta ("" = none), target, channel.
var publishScript = redis.NewScript(`
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], 'delta')
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'manifest', ARGV[2])
else
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'manifest', ARGV[2], 'delta', ARGV[3])
end
redis.call('SADD', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[4] .. ' ' .. ARGV[1])
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
type redisSink struct {
	c      redis.UniversalClient
	keys   RedisKeys
	reload func(ctx context.Context) ([]redisItem, error)
	m      *metrics
	log    *slog.Logger
	min    time.Duration
	max    time.Duration

	mu      sync.Mutex
	pending map[string]redisItem
	resync  bool
	kick    chan struct{}
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
		}
	}
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
		s.mu.Lock()
		s.resync = false
		s.mu.Unlock()
		for _, it := range items {
			s.enqueue(it)
		}
	}
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
			return nil
		}
		err := publishScript.Run(ctx, s.c, []string{s.keys.Env(it.target), s.keys.Envs()},
			strconv.FormatUint(it.version, 10), it.manifest, it.delta, it.target, s.keys.Channel()).Err()
		if err != nil {
			s.enqueue(it)
			s.mu.Lock()
			s.resync = true
			s.mu.Unlock()
			return err
		}
	}
}
