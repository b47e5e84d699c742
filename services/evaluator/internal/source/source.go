// Package source feeds signed manifests to the holder from where the control plane
// publishes them: Redis (the cached manifest hash plus pub/sub change events, see
// docs/manifest-distribution.md) or the control plane's gRPC sync stream.
//
// A Source runs until its context ends, never gives up on a failing upstream (it
// retries with capped, jittered backoff while the holder keeps serving what it has),
// and hands manifests and deltas to a Sink one at a time, in order.
package source

import (
	"context"
	"math/rand/v2"
	"time"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Source delivers manifests to a Sink until ctx ends. Run returns nil on
// cancellation; any other return is a configuration error that retrying cannot fix.
type Source interface {
	Run(ctx context.Context) error
}

// Sink is what a source needs from the holder (holder.Holder implements it).
type Sink interface {
	// Offer verifies sm as the next manifest of target ("": the one it names).
	Offer(target string, sm *manifestv1.SignedManifest) error
	// OfferDelta verifies and applies sd; holder.ErrGap asks for the full manifest.
	OfferDelta(sd *manifestv1.SignedDelta) error
	// Version is the version held for target (0: none).
	Version(target string) uint64
	// Signed is the signed manifest held for target (nil: none, or none signed).
	Signed(target string) *manifestv1.SignedManifest
	// Header is the signed header held for target (nil: none, or format 1).
	Header(target string) *manifestv1.SignedHeader
	// Serves reports whether target is served.
	Serves(target string) bool
	// Expect announces environments that must load before the evaluator is ready.
	Expect(targets []string)
	// SetHeads records the versions the source announced as current: the
	// evaluator is ready once it holds them.
	SetHeads(heads map[string]uint64)
	// Confirm records that the source confirmed the versions held of targets (none:
	// every environment held), e.g. a heartbeat.
	Confirm(targets ...string)
	// SetSourceUp records whether the source is reachable.
	SetSourceUp(up bool)
}

// Backoff yields capped exponential delays with full jitter.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.n, 20)
	if d > b.Max || d <= 0 {
		d = b.Max
	}
	b.n++
	return d/2 + rand.N(d/2+1)
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.n = 0 }

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
