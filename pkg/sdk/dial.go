package sdk

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// reconnectSpread shifts the first reconnection's window: after a lost
// connection, reconnection n waits Backoff.Delay(n+reconnectSpread), so the first
// one is uniform in [Min, min(Max, 8·Min)]. A fleet of clients that lost one
// evaluator at the same instant then arrives at its replacement over several
// seconds, not in one burst.
const reconnectSpread = 2

// dialer owns the timing of the client's TCP connections to the evaluator. gRPC's
// channel reconnects on its own schedule (exponential, ±20 % jitter), which would
// bring every client of a restarted evaluator back within the same second;
// instead the channel's own backoff is made negligible and every dial after the
// first to the same address waits a full-jitter delay here (Backoff, floor Min).
//
// The schedule is kept per address: with round_robin over several evaluators
// (Config.LoadBalancing), each one's connection is paced on its own.
type dialer struct {
	b    Backoff
	rand func() float64

	mu     sync.Mutex
	addrs  map[string]*dialState
	waitFn func(ctx context.Context, d time.Duration) error
}

// dialState is the schedule of one address.
type dialState struct {
	fails int       // dials since a connection last stayed up for ResetAfter
	upAt  time.Time // when the last dial connected (zero: it failed)
}

func newDialer(b Backoff) *dialer {
	return &dialer{b: b, rand: rand.Float64, addrs: map[string]*dialState{}, waitFn: sleepCtx}
}

// delay is the wait before the next dial of addr at now: none for the first dial
// of an address.
func (d *dialer) delay(addr string, now time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.addrs[addr]
	if st == nil {
		d.addrs[addr] = &dialState{}
		return 0
	}
	if !st.upAt.IsZero() && now.Sub(st.upAt) >= d.b.ResetAfter {
		st.fails = 0 // the last connection was healthy: start the schedule again
	}
	st.upAt = time.Time{}
	n := st.fails
	st.fails++
	return d.b.Delay(n+reconnectSpread, d.rand())
}

// dial is the gRPC context dialer.
func (d *dialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	if w := d.delay(addr, time.Now()); w > 0 {
		if err := d.waitFn(ctx, w); err != nil {
			return nil, err
		}
	}
	var nd net.Dialer
	conn, err := nd.DialContext(ctx, "tcp", addr)
	if err == nil {
		d.mu.Lock()
		d.addrs[addr].upAt = time.Now()
		d.mu.Unlock()
	}
	return conn, err
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dialOptions are the gRPC options that hand connection timing to d: its dialer,
// a negligible channel backoff, and a connect timeout longer than any wait.
func (d *dialer) dialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithContextDialer(d.dial),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1, MaxDelay: 10 * time.Millisecond},
			MinConnectTimeout: d.b.Max + 20*time.Second,
		}),
	}
}
