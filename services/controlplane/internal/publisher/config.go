package publisher

import (
	"errors"
	"fmt"
	"time"
)

// Config tunes the publisher. Zero fields take the defaults of DefaultConfig
// (see WithDefaults); Validate reports values that cannot work.
type Config struct {
	// Lifetime is how long a signed manifest is valid (expires-at minus issued-at).
	Lifetime time.Duration
	// History is how many versions per environment the database keeps.
	History int
	// PollInterval is the safety-net poll of the outbox when no wake-up arrives.
	PollInterval time.Duration
	// BatchSize is how many outbox rows one publish transaction takes at most.
	BatchSize int
	// ResignCheck is how often manifests close to expiry are looked for; a
	// manifest with less than half its lifetime left is re-signed as a new version.
	ResignCheck time.Duration
	// RetryMin and RetryMax bound the backoff after a failed publish or Redis write.
	RetryMin, RetryMax time.Duration
	// RedisPrefix is prepended to every Redis key and channel ("" in production; a
	// unique value per test run).
	RedisPrefix string
	// SnapshotQueue bounds the versions waiting to be written to object storage.
	SnapshotQueue int
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
		SnapshotQueue: 10000,
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
	return c
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
	return errors.Join(errList...)
}
