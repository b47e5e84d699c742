// Package rediskeys names the Redis keys and the channel through which the
// control plane's publisher hands signed manifests to evaluators
// (docs/manifest-distribution.md). Both sides build names here, so they agree.
//
// Every key of one environment carries the environment as a Redis Cluster hash
// tag ({org/project/environment}), so the publisher's script, which touches only
// that environment's keys, runs on one slot of a cluster. The set of environments,
// the synced marker and the channel are single keys outside any environment.
//
// Layout 2 (hash-tagged) replaced layout 1 (ff:env:org/project/environment). The
// upgrade: evaluators first (they read layout 2 and fall back to a layout-1 hash
// while no layout-2 hash exists), then the control plane (its publisher finds no
// layout-2 synced marker, re-writes every environment under the new names, then
// deletes the layout-1 hashes and marker). docs/operations.md, "Redis Cluster".
package rediskeys

// DefaultPrefix starts every key and the channel unless configured otherwise
// (FLAGFORGE_REDIS_KEY_PREFIX, the same on the control plane and the evaluators).
const DefaultPrefix = "ff:"

// Keys names the keys and channel for a prefix ("": DefaultPrefix).
type Keys struct{ Prefix string }

func (k Keys) prefix() string {
	if k.Prefix == "" {
		return DefaultPrefix
	}
	return k.Prefix
}

// Env is the hash of target ("org/project/environment"): fields version, manifest,
// delta. The braces make target the cluster hash tag.
func (k Keys) Env(target string) string { return k.prefix() + "env:{" + target + "}" }

// LegacyEnv is target's hash in layout 1 (no hash tag): evaluators read it while
// Env does not exist, and the publisher deletes it once Env is written.
func (k Keys) LegacyEnv(target string) string { return k.prefix() + "env:" + target }

// Envs is the set of every target that has a manifest.
func (k Keys) Envs() string { return k.prefix() + "envs" }

// Channel is the pub/sub channel of change events ("org/project/environment version").
func (k Keys) Channel() string { return k.prefix() + "manifests" }

// Synced is the marker a publisher sets when it starts re-writing every
// environment in layout 2: without it Redis has lost (or never had) the full set.
func (k Keys) Synced() string { return k.prefix() + "publisher:synced:2" }

// LegacySynced is layout 1's marker. The publisher deletes it when it migrates, so
// a control plane rolled back to layout 1 re-writes every environment there.
func (k Keys) LegacySynced() string { return k.prefix() + "publisher:synced" }
