package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// SyncConfig configures the sync-stream source.
type SyncConfig struct {
	// Addr is the control plane's gRPC address (required).
	Addr string
	// Token is the service token sent as "authorization: Bearer <token>".
	Token string
	// Environments to follow; empty: every environment the token may read.
	Environments []string
	// Idle ends a stream that delivered nothing (not even a heartbeat) for this long
	// (default 90s); the source then reconnects.
	Idle time.Duration
	// DialOptions replace the default (plaintext) transport credentials.
	DialOptions []grpc.DialOption
	// Logger (nil: slog.Default()).
	Logger *slog.Logger
}

// Sync follows the control plane's flagforge.sync.v1 SyncService/SyncManifests
// stream: it sends the versions held as cursors, hands snapshots and deltas to the
// sink in order, and reconnects with backoff when the stream ends, goes idle, or a
// delta does not apply (the server then starts with a snapshot). The stream's
// first message (SyncStart) gives the sink the head versions to catch up to;
// every heartbeat confirms the versions held; the source is up while a stream
// delivers messages.
type Sync struct {
	cfg    SyncConfig
	sink   Sink
	log    *slog.Logger
	conn   *grpc.ClientConn
	client syncv1.SyncServiceClient
}

// NewSync returns a sync source feeding sink. It does not connect yet.
func NewSync(cfg SyncConfig, sink Sink) (*Sync, error) {
	if cfg.Addr == "" {
		return nil, errors.New("source: sync address is required")
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 90 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := cfg.DialOptions
	if len(opts) == 0 {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	// Snapshots of large environments exceed gRPC's default 4 MiB.
	opts = append(opts[:len(opts):len(opts)], grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(manifest.MaxMessageBytes)))
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("source: sync: %w", err)
	}
	return &Sync{cfg: cfg, sink: sink, log: cfg.Logger.With("source", "sync"), conn: conn, client: syncv1.NewSyncServiceClient(conn)}, nil
}

// Conn is the connection to the control plane (shared with usage reports).
func (s *Sync) Conn() *grpc.ClientConn { return s.conn }

// Close releases the connection.
func (s *Sync) Close() error { return s.conn.Close() }

// Run follows the stream until ctx ends.
func (s *Sync) Run(ctx context.Context) error {
	bo := Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for {
		received, err := s.stream(ctx)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // the stream ended because Run was asked to stop
		}
		if received {
			bo.Reset()
		}
		s.log.Warn("sync stream ended; reconnecting", "err", err)
		if !sleep(ctx, bo.Next()) {
			return nil
		}
	}
}

// request names the environments followed and the versions held.
func (s *Sync) request() *syncv1.SyncManifestsRequest {
	req := &syncv1.SyncManifestsRequest{AllEnvironments: len(s.cfg.Environments) == 0}
	for _, t := range s.cfg.Environments {
		parts := strings.SplitN(t, "/", 3)
		if len(parts) != 3 {
			continue
		}
		req.Cursors = append(req.Cursors, &syncv1.SyncCursor{
			Environment: &syncv1.EnvironmentRef{Org: parts[0], Project: parts[1], Environment: parts[2]},
			Version:     s.sink.Version(t),
		})
	}
	return req
}

// stream runs one stream; received reports whether any message arrived.
func (s *Sync) stream(ctx context.Context) (received bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if s.cfg.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+s.cfg.Token)
	}
	idle := time.AfterFunc(s.cfg.Idle, func() { cancel(errors.New("sync stream idle")) })
	defer idle.Stop()
	st, err := s.client.SyncManifests(ctx, s.request())
	if err != nil {
		s.sink.SetSourceUp(false)
		return false, err
	}
	defer s.sink.SetSourceUp(false)
	for {
		msg, err := st.Recv()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return received, cause
			}
			return received, err
		}
		if !received {
			s.sink.SetSourceUp(true)
		}
		received = true
		idle.Reset(s.cfg.Idle)
		switch ev := msg.GetEvent().(type) {
		case *syncv1.SyncManifestsResponse_Start:
			heads := make(map[string]uint64, len(ev.Start.GetHeads()))
			for _, c := range ev.Start.GetHeads() {
				e := c.GetEnvironment()
				heads[e.GetOrg()+"/"+e.GetProject()+"/"+e.GetEnvironment()] = c.GetVersion()
			}
			s.sink.SetHeads(heads)
		case *syncv1.SyncManifestsResponse_Snapshot:
			_ = s.sink.Offer("", ev.Snapshot) // refusals are counted and logged by the sink
		case *syncv1.SyncManifestsResponse_Delta:
			if err := s.sink.OfferDelta(ev.Delta); err != nil {
				// Resubscribing with our cursors makes the server send a snapshot.
				return received, fmt.Errorf("delta not applied, resubscribing: %w", err)
			}
		case *syncv1.SyncManifestsResponse_Heartbeat:
			s.sink.Confirm() // the stream is live and in order: what is held is current
		case *syncv1.SyncManifestsResponse_Deleted:
			e := ev.Deleted.GetEnvironment()
			s.log.Info("environment deleted upstream; keeping its last manifest until restart",
				"environment", e.GetOrg()+"/"+e.GetProject()+"/"+e.GetEnvironment())
		}
	}
}
