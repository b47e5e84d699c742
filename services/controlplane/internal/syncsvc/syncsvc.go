// Package syncsvc implements flagforge.sync.v1.SyncService: evaluators follow
// signed manifests over a gRPC server stream (no Redis: the embedded default) and
// report evaluation counts.
//
// SyncManifests first sends a SyncStart naming the latest stored version of every
// followed environment (the caller is caught up once it holds them), then, per
// environment, deltas from the caller's version when the stored history covers
// the gap (each delta signed, diffed between consecutive stored versions, with the
// signature of the full manifest it produces attached), else a snapshot of the
// latest version; then the
// versions this process publishes or learns about (fanout.Hub), and heartbeats.
// A subscriber that falls behind its buffer is dropped with RESOURCE_EXHAUSTED and
// resumes from its version on reconnect.
//
// Authentication: a service token ("authorization: Bearer <token>") compared in
// constant time with Config.Token, unless Deps.Authorize replaces the check.
package syncsvc

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Store is what the service reads and writes.
type Store interface {
	LatestManifest(ctx context.Context, ref store.EnvRef) (*store.StoredManifest, error)
	ManifestRange(ctx context.Context, ref store.EnvRef, from, to uint64) ([]*store.StoredManifest, error)
	PublishTargets(ctx context.Context, org, project string) ([]store.EnvRef, error)
	RecordUsage(ctx context.Context, ref store.EnvRef, batchID string, counts []store.UsageCount) error
}

// Config configures the service.
type Config struct {
	// Token is the service token evaluators present (FLAGFORGE_SYNC_TOKEN).
	Token string `env:"SYNC_TOKEN"`
	// Heartbeat is the interval of heartbeat events (default 15s).
	Heartbeat time.Duration `env:"SYNC_HEARTBEAT, default=15s"`
	// MaxDeltas is the largest gap sent as deltas; larger gaps get a snapshot
	// (default 50).
	MaxDeltas int `env:"SYNC_MAX_DELTAS, default=50"`
	// RequireClientCert refuses callers whose TLS connection did not present a
	// client certificate verified against the server's client CA (mTLS between
	// evaluators and the control plane); set when FLAGFORGE_TLS_CLIENT_CA_FILE is.
	RequireClientCert bool
}

// Validate applies defaults and checks c.
func (c *Config) Validate() error {
	if c.Heartbeat == 0 {
		c.Heartbeat = 15 * time.Second
	}
	if c.MaxDeltas == 0 {
		c.MaxDeltas = 50
	}
	if c.Heartbeat < 0 || c.MaxDeltas < 0 {
		return errors.New("syncsvc: heartbeat and max deltas must be positive")
	}
	return nil
}

// Deps are the service's collaborators.
type Deps struct {
	Store  Store
	Signer *manifest.Signer
	Hub    *fanout.Hub
	// Authorize, when set, replaces the token check (e.g. the API's service-token
	// authentication); it returns an errs error.
	Authorize func(ctx context.Context) error
	Logger    *slog.Logger
	// Contexts records the sampled contexts of usage reports (nil: they are
	// dropped). seencontexts.Service implements it.
	Contexts ContextRecorder
}

// ContextRecorder stores the contexts an evaluator sampled in an environment.
type ContextRecorder interface {
	Record(ctx context.Context, ref store.EnvRef, cs []*evaluationv1.SampledContext) error
}

// maxReportedContexts bounds the sampled contexts of one usage report.
const maxReportedContexts = 10_000

// Server implements syncv1.SyncServiceServer.
type Server struct {
	syncv1.UnimplementedSyncServiceServer
	cfg Config
	d   Deps
	log *slog.Logger
	// drain closes when the process shuts down: open streams end (GracefulStop
	// would otherwise wait for them until its timeout).
	drain     chan struct{}
	drainOnce sync.Once
}

var _ syncv1.SyncServiceServer = (*Server)(nil)

// New returns the service.
func New(cfg Config, d Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Authorize == nil && cfg.Token == "" {
		return nil, errors.New("syncsvc: a service token (FLAGFORGE_SYNC_TOKEN) is required")
	}
	if d.Store == nil || d.Signer == nil || d.Hub == nil {
		return nil, errors.New("syncsvc: store, signer and hub are required")
	}
	log := d.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Server{cfg: cfg, d: d, log: log.With("component", "syncsvc"), drain: make(chan struct{})}, nil
}

// Drain ends every open stream with UNAVAILABLE (evaluators reconnect, to another
// replica or to this one once restarted) and refuses new ones. Call it before the
// gRPC server's GracefulStop.
func (s *Server) Drain() { s.drainOnce.Do(func() { close(s.drain) }) }

var errDraining = status.Error(codes.Unavailable, "control plane shutting down; reconnect")

// Authorize checks the caller's client certificate (when required) and service
// token.
func (s *Server) Authorize(ctx context.Context) error {
	if s.cfg.RequireClientCert && !verifiedClient(ctx) {
		return errs.E(errs.Unauthenticated, "the sync service requires a TLS client certificate signed by the control plane's client CA (FLAGFORGE_TLS_CLIENT_CA_FILE)")
	}
	if s.d.Authorize != nil {
		return s.d.Authorize(ctx)
	}
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		tok, ok := strings.CutPrefix(v, "Bearer ")
		if ok && subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) == 1 {
			return nil
		}
	}
	return errs.E(errs.Unauthenticated, "a valid sync service token is required")
}

// verifiedClient reports whether the call came over TLS with a verified client
// certificate.
func verifiedClient(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.VerifiedChains) > 0
}

func grpcErr(err error) error { return errs.GRPCStatus(err).Err() }

// SyncManifests implements the stream; see the package comment.
func (s *Server) SyncManifests(req *syncv1.SyncManifestsRequest, stream grpc.ServerStreamingServer[syncv1.SyncManifestsResponse]) error {
	ctx := stream.Context()
	if err := s.Authorize(ctx); err != nil {
		return grpcErr(err)
	}
	select {
	case <-s.drain:
		return errDraining
	default:
	}
	// Subscribe before reading the store, so nothing published in between is missed.
	sub := s.d.Hub.Subscribe()
	defer sub.Close()
	held := map[store.EnvRef]uint64{}
	all := req.GetAllEnvironments()
	for _, c := range req.GetCursors() {
		e := c.GetEnvironment()
		if e.GetOrg() == "" || e.GetProject() == "" || e.GetEnvironment() == "" {
			return grpcErr(errs.Invalid("cursors.environment", "org, project and environment are required"))
		}
		held[store.EnvRef{Org: e.GetOrg(), Project: e.GetProject(), Environment: e.GetEnvironment()}] = c.GetVersion()
	}
	if all {
		refs, err := s.d.Store.PublishTargets(ctx, "", "")
		if err != nil {
			return grpcErr(err)
		}
		for _, r := range refs {
			if _, ok := held[r]; !ok {
				held[r] = 0
			}
		}
	} else if len(held) == 0 {
		return grpcErr(errs.Invalid("cursors", "name environments to follow or set all_environments"))
	}
	start := &syncv1.SyncStart{}
	latest := make(map[store.EnvRef]*store.StoredManifest, len(held))
	for ref := range held {
		sm, err := s.d.Store.LatestManifest(ctx, ref)
		if errors.Is(err, errs.NotFound) {
			continue
		}
		if err != nil {
			return grpcErr(err)
		}
		latest[ref] = sm
		start.Heads = append(start.Heads, &syncv1.SyncCursor{
			Environment: &syncv1.EnvironmentRef{Org: ref.Org, Project: ref.Project, Environment: ref.Environment},
			Version:     sm.Version,
		})
	}
	slices.SortFunc(start.Heads, func(a, b *syncv1.SyncCursor) int {
		return cmp.Or(strings.Compare(a.GetEnvironment().GetOrg(), b.GetEnvironment().GetOrg()),
			strings.Compare(a.GetEnvironment().GetProject(), b.GetEnvironment().GetProject()),
			strings.Compare(a.GetEnvironment().GetEnvironment(), b.GetEnvironment().GetEnvironment()))
	})
	if err := stream.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Start{Start: start}}); err != nil {
		return err
	}
	for ref, v := range held {
		if latest[ref] == nil {
			continue
		}
		nv, err := s.catchUp(ctx, stream, ref, v)
		if err != nil {
			return grpcErr(err)
		}
		held[ref] = nv
	}
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	if err := stream.Send(heartbeat()); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.drain:
			return errDraining
		case <-sub.Dropped():
			return status.Error(codes.ResourceExhausted, "sync stream fell behind and was dropped; reconnect from the version held")
		case <-beat.C:
			if err := stream.Send(heartbeat()); err != nil {
				return err
			}
		case ev := <-sub.C():
			v, ok := held[ev.Ref]
			if !ok && !all {
				continue
			}
			if ev.Version <= v {
				continue
			}
			if v > 0 && ev.Version == v+1 && ev.Delta != nil {
				if err := stream.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Delta{Delta: ev.Delta}}); err != nil {
					return err
				}
				held[ev.Ref] = ev.Version
				continue
			}
			nv, err := s.catchUp(ctx, stream, ev.Ref, v)
			if err != nil {
				return grpcErr(err)
			}
			held[ev.Ref] = nv
		}
	}
}

func heartbeat() *syncv1.SyncManifestsResponse {
	return &syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Heartbeat{
		Heartbeat: &syncv1.SyncHeartbeat{Time: timestamppb.Now()}}}
}

// catchUp brings the caller from version held to the latest stored version:
// deltas when the history covers the gap, else a snapshot. It returns the
// version the caller holds afterwards.
func (s *Server) catchUp(ctx context.Context, stream grpc.ServerStreamingServer[syncv1.SyncManifestsResponse], ref store.EnvRef, held uint64) (uint64, error) {
	latest, err := s.d.Store.LatestManifest(ctx, ref)
	if errors.Is(err, errs.NotFound) {
		return held, nil
	}
	if err != nil {
		return held, err
	}
	if held == latest.Version {
		return held, nil
	}
	if held > 0 && held < latest.Version && int(latest.Version-held) <= s.cfg.MaxDeltas {
		ms, err := s.d.Store.ManifestRange(ctx, ref, held, latest.Version)
		if err != nil {
			return held, err
		}
		if len(ms) == int(latest.Version-held)+1 && ms[0].Version == held {
			deltas := make([]*manifestv1.SignedDelta, 0, len(ms)-1)
			for i := 1; i < len(ms); i++ {
				d, err := publisher.SignDelta(s.d.Signer, ms[i-1].Signed, ms[i].Signed)
				if err != nil {
					deltas = nil
					break
				}
				deltas = append(deltas, d)
			}
			if deltas != nil {
				for _, d := range deltas {
					if err := stream.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Delta{Delta: d}}); err != nil {
						return held, err
					}
				}
				return latest.Version, nil
			}
		}
	}
	if err := stream.Send(&syncv1.SyncManifestsResponse{Event: &syncv1.SyncManifestsResponse_Snapshot{Snapshot: latest.Signed}}); err != nil {
		return held, err
	}
	return latest.Version, nil
}

// ReportUsage stores a batch of evaluation counts.
func (s *Server) ReportUsage(ctx context.Context, req *syncv1.ReportUsageRequest) (*syncv1.ReportUsageResponse, error) {
	if err := s.Authorize(ctx); err != nil {
		return nil, grpcErr(err)
	}
	e := req.GetEnvironment()
	if e.GetOrg() == "" || e.GetProject() == "" || e.GetEnvironment() == "" {
		return nil, grpcErr(errs.Invalid("environment", "org, project and environment are required"))
	}
	if req.GetBatchId() == "" {
		return nil, grpcErr(errs.Invalid("batch_id", "a batch id is required (retries are deduplicated by it)"))
	}
	counts := make([]store.UsageCount, 0, len(req.GetCounts()))
	for _, c := range req.GetCounts() {
		if c.GetFlagKey() == "" || c.GetMinute() == nil || c.GetCount() < 0 || c.GetErrors() < 0 {
			return nil, grpcErr(errs.Invalid("counts", "each count needs a flag key, a minute, a count >= 0 and errors >= 0"))
		}
		counts = append(counts, store.UsageCount{Flag: c.GetFlagKey(), Variant: c.GetVariant(),
			Minute: c.GetMinute().AsTime().UTC().Truncate(time.Minute), Count: c.GetCount(), Errors: c.GetErrors()})
	}
	if len(req.GetContexts()) > maxReportedContexts {
		return nil, grpcErr(errs.Invalid("contexts", "at most %d contexts per batch", maxReportedContexts))
	}
	ref := store.EnvRef{Org: e.GetOrg(), Project: e.GetProject(), Environment: e.GetEnvironment()}
	batch := req.GetReporterId() + "/" + req.GetBatchId()
	if err := s.d.Store.RecordUsage(ctx, ref, batch, counts); err != nil {
		return nil, grpcErr(err)
	}
	// Contexts are idempotent (keyed by digest), so a retried batch records
	// them again harmlessly; a failure here fails the batch, which is retried.
	if s.d.Contexts != nil {
		if err := s.d.Contexts.Record(ctx, ref, req.GetContexts()); err != nil {
			return nil, grpcErr(err)
		}
	}
	return &syncv1.ReportUsageResponse{Accepted: int64(len(counts))}, nil
}
