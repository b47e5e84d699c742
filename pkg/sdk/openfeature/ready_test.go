package openfeature_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/pkg/sdk/openfeature"
)

// laggingEvaluator opens every stream the way an evaluator at version head does for
// a new caller that it can only give an older snapshot: StreamStart(head), the
// snapshot of version base, then one delta at a time up to head.
type laggingEvaluator struct {
	evaluationv1.UnimplementedEvaluationServiceServer
	snapshot *manifestv1.SignedManifest
	deltas   []*manifestv1.SignedDelta
	head     uint64
}

func (l *laggingEvaluator) StreamManifest(_ *evaluationv1.StreamManifestRequest, st grpc.ServerStreamingServer[evaluationv1.StreamManifestResponse]) error {
	send := func(m *evaluationv1.StreamManifestResponse) error { return st.Send(m) }
	if err := send(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Start{
		Start: &evaluationv1.StreamStart{HeadVersion: l.head}}}); err != nil {
		return err
	}
	if err := send(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Snapshot{Snapshot: l.snapshot}}); err != nil {
		return err
	}
	for _, d := range l.deltas {
		time.Sleep(time.Millisecond)
		if err := send(&evaluationv1.StreamManifestResponse{Event: &evaluationv1.StreamManifestResponse_Delta{Delta: d}}); err != nil {
			return err
		}
	}
	<-st.Context().Done()
	return nil
}

func toggle(version uint64, prev *manifestv1.Manifest) *manifestv1.Manifest {
	t0 := time.Now().UTC().Truncate(time.Second)
	m := &manifestv1.Manifest{Org: "acme", Project: "web", Environment: "production", Version: version,
		Bucketing: manifest.Bucketing, IssuedAt: timestamppb.New(t0), ExpiresAt: timestamppb.New(t0.Add(24 * time.Hour)),
		Flags: []*manifestv1.Flag{{Key: "new-ui", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN,
			Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}},
			Config: &manifestv1.FlagConfig{On: version%2 == 0, OffVariant: "off",
				DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}}}}
	if prev != nil {
		p, _ := manifest.Encode(prev)
		m.PreviousDigest = manifest.Digest(p)
	}
	return m
}

// SetProviderAndWait returns only once the provider holds the evaluator's head
// version: the first evaluation after it is decided by version 12, 50 times.
func TestTheProviderIsReadyOnlyAtTheHeadVersion(t *testing.T) {
	pub, signer := keys(t)
	const head = 12
	var ms []*manifestv1.Manifest
	var prev *manifestv1.Manifest
	for v := uint64(1); v <= head; v++ {
		prev = toggle(v, prev)
		ms = append(ms, prev)
	}
	ev := &laggingEvaluator{head: head}
	var err error
	ev.snapshot, err = signer.Manifest(ms[2])
	must(t, err)
	for i := 3; i < head; i++ {
		d, err := manifest.Diff(ms[i-1], ms[i])
		must(t, err)
		sd, err := signer.Delta(d)
		must(t, err)
		ev.deltas = append(ev.deltas, sd)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	srv := grpc.NewServer()
	evaluationv1.RegisterEvaluationServiceServer(srv, ev)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	for run := range 50 {
		c, err := sdk.New(sdk.Config{TrustedKeys: pub, Address: lis.Addr().String(), SDKKey: "srv-key", DisableUsage: true})
		must(t, err)
		domain := fmt.Sprintf("ready-%d", run)
		must(t, of.SetNamedProviderAndWait(domain, openfeature.New(c)))
		d, err := of.NewClient(domain).BooleanValueDetails(context.Background(), "new-ui", false, of.EvaluationContext{})
		must(t, err)
		if v := d.FlagMetadata["manifestVersion"]; v != int64(head) {
			t.Fatalf("run %d: first evaluation after SetProviderAndWait decided by version %v, want %d", run, v, head)
		}
		// Replacing the provider shuts ours down (and closes its client).
		must(t, of.SetNamedProviderAndWait(domain, of.NoopProvider{}))
	}
}
