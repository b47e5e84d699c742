package sdk_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// TestRoundRobinSpreadsCallsOverEveryResolvedEvaluator: with LoadBalancing
// round_robin and a target resolving to three evaluators (as dns:/// does on a
// headless Service), usage reports reach all three, and when the evaluator
// holding the stream goes away the stream resumes on another one from its
// version.
func TestRoundRobinSpreadsCallsOverEveryResolvedEvaluator(t *testing.T) {
	fakes := make([]*fakeEvaluator, 3)
	addrs := make([]resolver.Address, 3)
	stops := make([]func(), 3)
	for i := range fakes {
		fakes[i], addrs[i].Addr, stops[i] = startStoppableFake(t)
	}
	r := manual.NewBuilderWithScheme("ffbalance")
	r.InitialState(resolver.State{Addresses: addrs})
	cfg := fastConfig("ffbalance:///evaluators")
	cfg.LoadBalancing = "round_robin"
	cfg.DialOptions = []grpc.DialOption{grpc.WithResolvers(r)}
	cfg.TrustedKeys, cfg.DisableUsage, cfg.UsageInterval = trustedKeys(t), false, 20*time.Millisecond
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()

	holder, s := nextOfAny(t, fakes)
	first := chained(t, nil, 1, true)
	must(t, s.send(snapshotMsg(sign(t, first))))
	must(t, c.WaitReady(context.Background()))
	waitFor(t, "usage reports on every evaluator", func() bool {
		c.Bool("new-ui", nil, false)
		for _, f := range fakes {
			f.mu.Lock()
			n := len(f.counts)
			f.mu.Unlock()
			if n == 0 {
				return false
			}
		}
		return true
	})

	// The evaluator holding the stream stops; the stream resumes elsewhere
	// from the version held.
	stops[holder]()
	others := make([]*fakeEvaluator, 0, 2)
	for i, f := range fakes {
		if i != holder {
			others = append(others, f)
		}
	}
	_, s2 := nextOfAny(t, others)
	if s2.from != 1 {
		t.Fatalf("the stream resumed from version %d, want 1", s2.from)
	}
}

func TestLoadBalancingMustBeAKnownPolicy(t *testing.T) {
	cfg := fastConfig("127.0.0.1:1")
	cfg.TrustedKeys, cfg.LoadBalancing = trustedKeys(t), "least_request"
	if _, err := sdk.New(cfg); err == nil || !contains(err.Error(), "LoadBalancing") {
		t.Fatalf("New: %v, want an error naming LoadBalancing", err)
	}
}

// nextOfAny waits for a stream on any of fakes.
func nextOfAny(t *testing.T, fakes []*fakeEvaluator) (int, *fakeStream) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		for i, f := range fakes {
			select {
			case s := <-f.streams:
				return i, s
			default:
			}
		}
		select {
		case <-deadline:
			t.Fatal("the client did not open a stream")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// startStoppableFake is startFake with a stop function (stopping twice is fine).
func startStoppableFake(t *testing.T) (*fakeEvaluator, string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	f := &fakeEvaluator{streams: make(chan *fakeStream, 16), counts: map[string]int64{}}
	srv := grpc.NewServer()
	evaluationv1.RegisterEvaluationServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return f, lis.Addr().String(), srv.Stop
}
