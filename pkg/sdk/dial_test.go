package sdk

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestTheSDKPacesEveryReconnectionWithFullJitterAboveTheFloor(t *testing.T) {
	t.Parallel()
	b := Backoff{Min: time.Second, Max: 30 * time.Second, ResetAfter: time.Minute}
	d := newDialer(b)
	r := 0.0
	d.rand = func() float64 { return r }
	now := time.Unix(1000, 0)
	const addr = "10.0.0.1:9091"
	if w := d.delay(addr, now); w != 0 {
		t.Fatalf("the first dial waited %s", w)
	}
	if w := d.delay("10.0.0.2:9091", now); w != 0 {
		t.Fatalf("the first dial of a second evaluator waited %s", w)
	}
	// Reconnection n after a loss: uniform in [Min, min(Max, Min·2^(n+3))].
	for n, ceil := range []time.Duration{8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second} {
		r = 0
		lo := d.delay(addr, now)
		d.addrs[addr].fails-- // same attempt, other end of the window
		r = 0.999999
		hi := d.delay(addr, now)
		if lo != b.Min || hi < ceil-time.Millisecond || hi > ceil {
			t.Errorf("reconnection %d: window [%s, %s], want [%s, %s]", n, lo, hi, b.Min, ceil)
		}
	}
	// A connection that stayed up for ResetAfter starts the schedule again.
	d.addrs[addr].upAt = now
	r = 0.999999
	if w := d.delay(addr, now.Add(2*time.Minute)); w > 8*time.Second {
		t.Errorf("after a healthy connection the first reconnection waited %s", w)
	}
}

func TestTheDialerWaitsBeforeReconnectingAndGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	d := newDialer(Backoff{Min: time.Second, Max: 30 * time.Second, ResetAfter: time.Minute})
	var waited []time.Duration
	d.waitFn = func(ctx context.Context, w time.Duration) error { waited = append(waited, w); return sleepCtx(ctx, 0) }
	for range 2 {
		c, err := d.dial(context.Background(), l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
	if len(waited) != 1 || waited[0] < time.Second || waited[0] > 8*time.Second {
		t.Fatalf("waits before dials: %v (want none, then one in [1s, 8s])", waited)
	}
	d.waitFn = sleepCtx
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.dial(ctx, l.Addr().String()); err == nil {
		t.Fatal("a cancelled dial connected")
	}
}
