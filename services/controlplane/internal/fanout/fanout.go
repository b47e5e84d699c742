// Package fanout delivers published manifest versions to in-process subscribers
// (the sync streams of evaluators).
//
// Publish never blocks: each subscriber has a bounded buffer, and a subscriber
// whose buffer is full is dropped (its Dropped channel closes) instead of slowing
// the publisher or the other subscribers. A dropped subscriber reconnects and
// catches up from the stored history.
package fanout

import (
	"sync"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Event is one published version.
type Event struct {
	Ref     store.EnvRef
	Version uint64
	// Manifest is the signed version; Delta (nil for version 1, or when unknown)
	// turns Version-1 into it.
	Manifest *manifestv1.SignedManifest
	Delta    *manifestv1.SignedDelta
}

// DefaultBuffer is the per-subscriber buffer when New is given 0.
const DefaultBuffer = 256

// Hub fans events out to subscribers. The zero value is not usable; use New.
type Hub struct {
	buffer int
	mu     sync.Mutex
	subs   map[*Subscription]struct{}
}

// New returns a hub with buffer events of room per subscriber.
func New(buffer int) *Hub {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	return &Hub{buffer: buffer, subs: make(map[*Subscription]struct{})}
}

// Subscription receives events published after Subscribe returned.
type Subscription struct {
	h       *Hub
	c       chan Event
	dropped chan struct{}
	once    sync.Once
}

// Subscribe registers a subscriber; call Close when done.
func (h *Hub) Subscribe() *Subscription {
	s := &Subscription{h: h, c: make(chan Event, h.buffer), dropped: make(chan struct{})}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// C delivers events in publication order.
func (s *Subscription) C() <-chan Event { return s.c }

// Dropped is closed when the subscriber fell behind by more than its buffer and
// was dropped; events after that are not delivered.
func (s *Subscription) Dropped() <-chan struct{} { return s.dropped }

// Close unregisters the subscriber.
func (s *Subscription) Close() {
	s.h.mu.Lock()
	delete(s.h.subs, s)
	s.h.mu.Unlock()
}

// Subscribers is the number of registered subscribers.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Publish delivers ev to every subscriber without blocking; it returns how many
// subscribers were dropped because their buffer was full.
func (h *Hub) Publish(ev Event) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	dropped := 0
	for s := range h.subs {
		select {
		case s.c <- ev:
		default:
			delete(h.subs, s)
			s.once.Do(func() { close(s.dropped) })
			dropped++
		}
	}
	return dropped
}
