package publisher

import (
	"errors"
	"fmt"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

// Config tunes the publisher. Zero fields take the defaults of DefaultConfig
// (see WithDefaults); Validate reports values that cannot work.
type Config struct {
	// Lifetime is how long a signed manifest is valid (expires-at minus issued-at).
	Lifetime time.Duration `env:"MANIFEST_LIFETIME, default=168h"`
	// History is how many versions per environment the database keeps.
	History int `env:"MANIFEST_HISTORY, default=50"`
	// PollInterval is the safety-net poll of the outbox when no wake-up arrives.
	PollInterval time.Duration `env:"PUBLISHER_POLL_INTERVAL, default=1s"`
	// BatchSize is how many outbox rows one publish transaction takes at most.
	BatchSize int `env:"PUBLISHER_BATCH_SIZE, default=1000"`
	// ResignCheck is how often manifests close to expiry are looked for; a
	// manifest with less than half its lifetime left is re-signed as a new version.
	ResignCheck time.Duration `env:"PUBLISHER_RESIGN_CHECK, default=1m"`
	// RetryMin and RetryMax bound the backoff after a failed publish or Redis write.
	RetryMin time.Duration `env:"PUBLISHER_RETRY_MIN, default=100ms"`
	RetryMax time.Duration `env:"PUBLISHER_RETRY_MAX, default=5s"`
	// RedisPrefix starts every Redis key and the channel ("": DefaultRedisPrefix,
	// "ff:"); a unique value per test run. Evaluators must use the same prefix.
	RedisPrefix string `env:"REDIS_KEY_PREFIX, default=ff:"`
	// SnapshotQueue bounds the versions waiting to be written to object storage.
	SnapshotQueue int `env:"SNAPSHOT_QUEUE, default=10000"`
	// OutboxRetention is how long outbox rows are kept after they were published;
	// the active publisher deletes older ones every PruneInterval, in batches of
	// PruneBatch rows (one short transaction each). Unpublished rows are never
	// deleted.
	OutboxRetention time.Duration `env:"PUBLISHER_OUTBOX_RETENTION, default=24h"`
	PruneInterval   time.Duration `env:"PUBLISHER_PRUNE_INTERVAL, default=10m"`
	PruneBatch      int           `env:"PUBLISHER_PRUNE_BATCH, default=500"`
	// SnapshotKeepVersions and SnapshotKeepDays are the snapshot retention
	// (snapshot.Retention): every SnapshotPruneInterval the active publisher
	// deletes the snapshots of each environment that are neither among its
	// SnapshotKeepVersions highest versions nor the highest version of one of the
	// last SnapshotKeepDays days (UTC). The newest snapshot is always kept.
	// SnapshotKeepVersions < 0 keeps every snapshot (no pruning);
	// SnapshotKeepDays < 0 keeps no daily snapshots beyond the last versions.
	SnapshotKeepVersions  int           `env:"SNAPSHOT_KEEP_VERSIONS, default=100"`
	SnapshotKeepDays      int           `env:"SNAPSHOT_KEEP_DAYS, default=30"`
	SnapshotPruneInterval time.Duration `env:"SNAPSHOT_PRUNE_INTERVAL, default=1h"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Lifetime:      7 * 24 * time.Hour,
		History:       50,
		PollInterval:  time.Second,
		BatchSize:     1000,
		ResignCheck:   time.Minute,
		RetryMin:      100 * time.Millisecond,
		RetryMax:      5 * time.Second,
		RedisPrefix:   DefaultRedisPrefix,
		SnapshotQueue: 10000,

		OutboxRetention: 24 * time.Hour,
		PruneInterval:   10 * time.Minute,
		PruneBatch:      500,

		SnapshotKeepVersions:  100,
		SnapshotKeepDays:      30,
		SnapshotPruneInterval: time.Hour,
	}
}

// WithDefaults returns c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	if c.Lifetime == 0 {
		c.Lifetime = d.Lifetime
	}
	if c.History == 0 {
		c.History = d.History
	}
	if c.PollInterval == 0 {
		c.PollInterval = d.PollInterval
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	if c.ResignCheck == 0 {
		c.ResignCheck = d.ResignCheck
	}
	if c.RetryMin == 0 {
		c.RetryMin = d.RetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = d.RetryMax
	}
	if c.SnapshotQueue == 0 {
		c.SnapshotQueue = d.SnapshotQueue
	}
	if c.RedisPrefix == "" {
		c.RedisPrefix = d.RedisPrefix
	}
	if c.OutboxRetention == 0 {
		c.OutboxRetention = d.OutboxRetention
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = d.PruneInterval
	}
	if c.PruneBatch == 0 {
		c.PruneBatch = d.PruneBatch
	}
	if c.SnapshotKeepVersions == 0 {
		c.SnapshotKeepVersions = d.SnapshotKeepVersions
	}
	if c.SnapshotKeepDays == 0 {
		c.SnapshotKeepDays = d.SnapshotKeepDays
	}
	if c.SnapshotPruneInterval == 0 {
		c.SnapshotPruneInterval = d.SnapshotPruneInterval
	}
	return c
}

// SnapshotRetention is the retention the publisher applies; ok is false when
// pruning is off (SnapshotKeepVersions < 0).
func (c Config) SnapshotRetention() (r snapshot.Retention, ok bool) {
	if c.SnapshotKeepVersions < 0 {
		return snapshot.Retention{}, false
	}
	return snapshot.Retention{Keep: c.SnapshotKeepVersions, Days: max(c.SnapshotKeepDays, 0)}, true
}

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	var errList []error
	if c.Lifetime < time.Minute {
		errList = append(errList, fmt.Errorf("publisher: manifest lifetime %s is shorter than a minute", c.Lifetime))
	}
	if c.History < 2 {
		errList = append(errList, fmt.Errorf("publisher: history %d must keep at least 2 versions (deltas need the previous one)", c.History))
	}
	if c.PollInterval <= 0 || c.ResignCheck <= 0 || c.RetryMin <= 0 || c.RetryMax < c.RetryMin {
		errList = append(errList, errors.New("publisher: intervals must be positive and RetryMax >= RetryMin"))
	}
	if c.BatchSize <= 0 || c.SnapshotQueue <= 0 {
		errList = append(errList, errors.New("publisher: batch size and snapshot queue must be positive"))
	}
	if c.OutboxRetention < time.Minute {
		errList = append(errList, fmt.Errorf("publisher: outbox retention %s is shorter than a minute", c.OutboxRetention))
	}
	if c.PruneInterval <= 0 || c.PruneBatch <= 0 || c.PruneBatch > 10000 {
		errList = append(errList, errors.New("publisher: prune interval must be positive and prune batch between 1 and 10000"))
	}
	if c.SnapshotPruneInterval <= 0 {
		errList = append(errList, fmt.Errorf("FLAGFORGE_SNAPSHOT_PRUNE_INTERVAL: %s must be positive", c.SnapshotPruneInterval))
	}
	return errors.Join(errList...)
}
