package sdk_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
)

func startMsg(head uint64) *evaluationv1.StreamManifestResponse {
	return &evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Start{
		Start: &evaluationv1.StreamStart{HeadVersion: head}}}
}

// versions returns manifests 1..n, chained, new-ui toggling (on at odd versions).
func versions(t *testing.T, n int) []*manifestv1.Manifest {
	out := make([]*manifestv1.Manifest, 0, n)
	var prev *manifestv1.Manifest
	for v := 1; v <= n; v++ {
		m := chained(t, prev, uint64(v), v%2 == 1)
		out = append(out, m)
		prev = m
	}
	return out
}

// The evaluator opens the stream with its head version (12), then sends an older
// snapshot (3) and the deltas after it, one at a time. WaitReady must return only
// once version 12 is held, so the first evaluation after it is decided by 12:
// checked 50 times, with the deltas spaced so that a client ready too early is
// caught.
func TestWaitReadyReturnsOnlyOnceTheHeadVersionIsHeld(t *testing.T) {
	ms := versions(t, 12)
	for run := range 50 {
		f, addr := startFake(t)
		cfg := fastConfig(addr)
		cfg.TrustedKeys = trustedKeys(t)
		c, err := sdk.New(cfg)
		must(t, err)
		s := f.next(t)
		must(t, s.send(startMsg(12)))
		must(t, s.send(snapshotMsg(sign(t, ms[2]))))
		go func() {
			for i := 3; i < 12; i++ {
				time.Sleep(time.Millisecond)
				if s.send(deltaMsg(t, ms[i-1], ms[i])) != nil {
					return
				}
			}
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = c.WaitReady(ctx)
		cancel()
		must(t, err)
		if d := c.BoolDetail("new-ui", nil, true); d.ManifestVersion != 12 {
			t.Fatalf("run %d: ready at version %d, want the head version 12", run, d.ManifestVersion)
		}
		if st := c.Status(); st.State != sdk.StateReady || st.ManifestVersion != 12 {
			t.Fatalf("run %d: status %+v, want READY at 12", run, st)
		}
		_ = c.Close()
	}
}

// Before the head version is held, Status says NOT_READY even though evaluations
// already answer from the older manifest.
func TestStatusIsNotReadyWhileBehindTheHead(t *testing.T) {
	ms := versions(t, 3)
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys = trustedKeys(t)
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	s := f.next(t)
	must(t, s.send(startMsg(3)))
	must(t, s.send(snapshotMsg(sign(t, ms[0]))))
	waitFor(t, "version 1", func() bool { return c.Status().ManifestVersion == 1 })
	if st := c.Status(); st.State != sdk.StateNotReady {
		t.Fatalf("holding 1 of head 3: state %v, want NOT_READY", st.State)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	if err := c.WaitReady(ctx); err == nil {
		t.Fatal("WaitReady returned while behind the head version")
	}
	cancel()
	must(t, s.send(deltaMsg(t, ms[0], ms[1])))
	must(t, s.send(deltaMsg(t, ms[1], ms[2])))
	must(t, c.WaitReady(context.Background()))
	if st := c.Status(); st.State != sdk.StateReady || st.ManifestVersion != 3 {
		t.Fatalf("status %+v, want READY at 3", st)
	}
}

// An evaluator that is not ready answers UNAVAILABLE: the client retries with
// backoff (never gives up as on a refused key) and becomes ready once the
// evaluator is.
func TestAClientStartedBeforeItsEvaluatorIsReadyBecomesReadyOnceItIs(t *testing.T) {
	ms := versions(t, 1)
	f, addr := startFake(t)
	cfg := fastConfig(addr)
	cfg.TrustedKeys = trustedKeys(t)
	c, err := sdk.New(cfg)
	must(t, err)
	defer func() { _ = c.Close() }()
	for range 3 {
		f.next(t).end <- status.Error(codes.Unavailable, "the evaluator is not ready")
	}
	if st := c.Status(); st.State != sdk.StateNotReady {
		t.Fatalf("after UNAVAILABLE: state %v, want NOT_READY (retrying)", st.State)
	}
	s := f.next(t)
	must(t, s.send(startMsg(1)))
	must(t, s.send(snapshotMsg(sign(t, ms[0]))))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	must(t, c.WaitReady(ctx))
}
