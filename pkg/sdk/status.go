package sdk

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/flagforge/flagforge/pkg/eval"
)

// State summarizes a client's health.
type State int

// States, as Status reports them.
const (
	// StateNotReady: not caught up yet. With no manifest calls answer defaults
	// (PROVIDER_NOT_READY); with an older one (a bootstrap, a snapshot before the
	// deltas that follow it) they answer from it.
	StateNotReady State = iota
	// StateReady: a manifest is held and the evaluator was reached recently.
	StateReady
	// StateStale: a manifest is held (and answers), but there was no successful
	// contact with the evaluator for Config.StaleAfter, or the manifest expires
	// within Config.ExpiryMargin (or has expired).
	StateStale
	// StateError: the evaluator refused the SDK key; the client stopped syncing and
	// answers from the last manifest it holds (if any).
	StateError
)

func (s State) String() string {
	switch s {
	case StateNotReady:
		return "NOT_READY"
	case StateReady:
		return "READY"
	case StateStale:
		return "STALE"
	case StateError:
		return "ERROR"
	}
	return "UNKNOWN"
}

// Status is a client's health at one instant.
type Status struct {
	State State
	// ManifestVersion is the version held (0: none); ExpiresAt its expiry.
	ManifestVersion uint64
	ExpiresAt       time.Time
	// LastSync is the last successful contact with the evaluator (a manifest, a
	// delta, a heartbeat, a 304), or when the bootstrap manifest was loaded.
	LastSync time.Time
	// LastError is the last error met since the last success (fatal: wraps
	// ErrKeyRefused).
	LastError error
	// Mode is how the client syncs now: ModeStreaming, ModePolling or ModeOffline.
	Mode string
	// UsageDropped counts evaluations that could not be reported (bounds hit).
	UsageDropped int64
}

// Status returns the client's current health. It takes a lock; do not call it on
// a hot path.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{State: c.stateLocked(c.cfg.Now()), LastSync: c.lastSync, LastError: c.lastErr, Mode: c.mode}
	if s := c.state.Load(); s != nil {
		st.ManifestVersion = s.src.GetVersion()
		st.ExpiresAt = s.src.GetExpiresAt().AsTime()
	}
	if c.usage != nil {
		st.UsageDropped = c.usage.dropped.Load()
	}
	return st
}

func (c *Client) networked() bool { return c.conn != nil || c.cfg.HTTPURL != "" }

func (c *Client) stateLocked(now time.Time) State {
	if c.fatal != nil {
		return StateError
	}
	s := c.state.Load()
	if s == nil || !c.isReady() {
		return StateNotReady
	}
	if c.networked() && now.Sub(c.lastSync) > c.cfg.StaleAfter {
		return StateStale
	}
	if exp := s.src.GetExpiresAt().AsTime(); !now.Add(c.cfg.ExpiryMargin).Before(exp) {
		return StateStale
	}
	return StateReady
}

// announceLocked sends an event when the state changed since the last one.
func (c *Client) announceLocked(now time.Time) {
	st := c.stateLocked(now)
	if st == c.stated {
		return
	}
	c.stated = st
	ev := Event{Err: c.lastErr}
	if s := c.state.Load(); s != nil {
		ev.Version = s.src.GetVersion()
	}
	switch st {
	case StateReady:
		ev.Type = EventReady
	case StateStale:
		ev.Type = EventStale
	case StateError:
		ev.Type = EventError
	default:
		return
	}
	c.events.push(item{event: ev})
}

// housekeep re-evaluates the state periodically (staleness is a matter of time).
func (c *Client) housekeep(ctx context.Context) {
	period := min(time.Second, max(c.cfg.StaleAfter/4, 10*time.Millisecond))
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.mu.Lock()
			c.announceLocked(c.cfg.Now())
			c.mu.Unlock()
		}
	}
}

// EventType names what an Event says.
type EventType int

// Event types. They map onto OpenFeature's provider events.
const (
	// EventReady: the client caught up (see WaitReady), or recovered from stale.
	EventReady EventType = iota + 1
	// EventConfigurationChanged: a new manifest was swapped in; FlagKeys lists the
	// flags whose configuration changed (or that use a segment that changed).
	EventConfigurationChanged
	// EventStale: see StateStale.
	EventStale
	// EventError: the evaluator refused the SDK key (fatal; Err wraps ErrKeyRefused).
	EventError
)

func (t EventType) String() string {
	switch t {
	case EventReady:
		return "READY"
	case EventConfigurationChanged:
		return "CONFIGURATION_CHANGED"
	case EventStale:
		return "STALE"
	case EventError:
		return "ERROR"
	}
	return "UNKNOWN"
}

// Event is a change of a client's state or manifest.
type Event struct {
	Type     EventType
	FlagKeys []string
	Version  uint64
	Err      error
}

// Change is what an OnChange callback receives: the flag's detail for the
// listener's context under the previous and the new manifest.
type Change struct {
	FlagKey  string
	Old, New Detail[any]
}

// OnEvent registers fn for every Event. Callbacks run one at a time on the
// client's dispatcher goroutine, in order; a slow callback delays the others (and
// past 1,024 queued events the oldest are dropped). remove unregisters fn.
func (c *Client) OnEvent(fn func(Event)) (remove func()) {
	return c.events.add(&listener{onEvent: fn})
}

// OnChange registers fn for flagKey: whenever a new manifest changes the flag's
// configuration (or a segment its rules use), or changes the flag's evaluated
// detail for ctx (e.g. through a prerequisite), fn is called with the detail
// evaluated for ctx (nil: the empty context) under the old and the new manifest.
// The first manifest does not call it. Callbacks run on the dispatcher goroutine
// (see OnEvent); evaluating for fn is not counted as usage.
func (c *Client) OnChange(flagKey string, ctx *Context, fn func(Change)) (remove func()) {
	return c.events.add(&listener{flagKey: flagKey, ctx: ctx, onChange: fn})
}

type listener struct {
	onEvent  func(Event)
	flagKey  string
	ctx      *Context
	onChange func(Change)
}

type item struct {
	listeners []*listener // those registered when the item was queued
	event     Event
	old, next *snapshot
	changed   []string
}

const maxQueuedEvents = 1024

// dispatcher runs listeners on one goroutine so that neither evaluations nor the
// sync loop ever wait for a callback.
type dispatcher struct {
	log       *slog.Logger
	mu        sync.Mutex
	queue     []item
	listeners []*listener
	wake      chan struct{}
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

func newDispatcher(log *slog.Logger) *dispatcher {
	d := &dispatcher{log: log, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go d.run()
	return d
}

func (d *dispatcher) add(l *listener) func() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listeners = append(slices.Clip(d.listeners), l)
	return func() {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.listeners = slices.DeleteFunc(slices.Clone(d.listeners), func(x *listener) bool { return x == l })
	}
}

func (d *dispatcher) push(it item) {
	d.mu.Lock()
	it.listeners = d.listeners
	if len(d.queue) >= maxQueuedEvents {
		d.queue = d.queue[1:]
		d.log.Warn("event queue full: oldest event dropped")
	}
	d.queue = append(d.queue, it)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dispatcher) close() {
	d.once.Do(func() { close(d.stop) })
	<-d.done
}

func (d *dispatcher) run() {
	defer close(d.done)
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		for {
			d.mu.Lock()
			if len(d.queue) == 0 {
				d.mu.Unlock()
				break
			}
			it := d.queue[0]
			d.queue = d.queue[1:]
			d.mu.Unlock()
			for _, l := range it.listeners {
				d.deliver(l, it)
			}
		}
	}
}

func (d *dispatcher) deliver(l *listener, it item) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("listener panicked", "panic", r)
		}
	}()
	if l.onEvent != nil {
		l.onEvent(it.event)
		return
	}
	if it.old == nil || it.next == nil || it.event.Type != EventConfigurationChanged {
		return
	}
	oldR := it.old.m.Evaluate(l.flagKey, l.ctx, eval.Any, nil)
	newR := it.next.m.Evaluate(l.flagKey, l.ctx, eval.Any, nil)
	_, configChanged := slices.BinarySearch(it.changed, l.flagKey)
	if !configChanged && oldR.Variant == newR.Variant && oldR.Reason == newR.Reason &&
		oldR.RuleID == newR.RuleID && oldR.ErrorCode == newR.ErrorCode {
		return
	}
	l.onChange(Change{FlagKey: l.flagKey, Old: anyDetail(oldR, nil), New: anyDetail(newR, nil)})
}
