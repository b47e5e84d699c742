// Package app assembles the control plane's serving process from its parts: the
// admin gRPC server (interceptors + services over a store), the evaluators' sync
// service and the signed manifest download on the same gRPC port, the HTTP server
// (REST gateway, health, metrics, OpenAPI), the background work (manifest
// publisher, schedule runner, webhook dispatcher), and their graceful shutdown. It
// takes an opened store and its collaborators, so the process (cmd/controlplane)
// and the end-to-end tests run the same assembly.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/services/controlplane/internal/auditcheck"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/explainsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/httpapi"
	"github.com/flagforge/flagforge/services/controlplane/internal/impact"
	"github.com/flagforge/flagforge/services/controlplane/internal/lifecycle"
	"github.com/flagforge/flagforge/services/controlplane/internal/manifestsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/oidclogin"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/release"
	"github.com/flagforge/flagforge/services/controlplane/internal/rpc"
	"github.com/flagforge/flagforge/services/controlplane/internal/schedule"
	"github.com/flagforge/flagforge/services/controlplane/internal/seencontexts"
	"github.com/flagforge/flagforge/services/controlplane/internal/server"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/syncsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/webhook"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// Config is what the assembly needs from the process configuration.
type Config struct {
	GRPCAddr            string
	GRPCShutdownTimeout time.Duration
	HTTP                httpapi.Config
	Auth                auth.Config
	RateLimit           ratelimit.Config
	// Schedule, Webhooks and Lifecycle tune governance; zero values: defaults.
	Schedule schedule.Config
	// Release runs release plans (zero fields: defaults; no Prometheus URL: PromQL
	// guardrails are refused).
	Release   release.Config
	Webhooks  webhook.Config
	Lifecycle lifecycle.Config
	// SeenContexts says how many sampled contexts are kept and for how long
	// (zero fields: defaults).
	SeenContexts seencontexts.Config
	// Limits bound every request of both listeners (body size, timeouts, keepalive
	// pings that find dead sync-stream peers); zero fields: defaults.
	Limits limits.Config
	// Publisher tunes the manifest publisher (zero fields: defaults).
	Publisher publisher.Config
	// Sync configures the evaluators' sync service; its Token is required.
	Sync syncsvc.Config
	// Manifests are the publisher's collaborators; Manifests.Signer is required.
	Manifests Manifests
	// TLS, when set, serves both listeners over TLS from its (reloaded) files;
	// with a client CA, the sync service requires verified client certificates.
	TLS *tlsfiles.Reloader
	// TLSClientCA reports that TLS verifies client certificates (mTLS on the sync
	// stream).
	TLSClientCA bool
	// Audit tunes the periodic audit chain verification (zero: disabled).
	Audit auditcheck.Config
	// Checkpoints tunes the signed audit checkpoints written beside the manifest
	// snapshots (zero Interval: none).
	Checkpoints checkpoint.Config
	// Now is the clock of schedules, webhooks, lifecycle statuses and manifest
	// timestamps (nil: time.Now); tests inject one.
	Now func() time.Time
}

// Manifests are what publishing and distributing signed manifests needs besides
// the store.
type Manifests struct {
	// Signer signs every manifest version (required).
	Signer *manifest.Signer
	// Elector elects the one publishing replica (publisher.NewPostgres on
	// PostgreSQL). nil: this process is the only publisher (publisher.Local), woken
	// by the store's commit hook when it has one (SQLite's OnOutboxCommit).
	Elector publisher.Elector
	// Redis, when set, receives the latest version of each environment.
	Redis redis.UniversalClient
	// Snapshots, when set, receives every version.
	Snapshots snapshot.Store
}

// Store is the storage the process serves from.
type Store interface {
	server.Storer
	publisher.Store
	syncsvc.Store
	manifestsvc.Store
	seencontexts.Store
	impact.Store
	Ping(ctx context.Context) error
}

// outboxNotifier is a store that reports its own commits of outbox rows (SQLite,
// where no other process writes): the in-process publisher's wake-up.
type outboxNotifier interface {
	OnOutboxCommit(fn func())
}

// App is a bound, not yet serving, control plane.
type App struct {
	cfg  Config
	log  *slog.Logger
	grpc *grpc.Server
	http *http.Server
	glis net.Listener
	hlis net.Listener
	conn *grpc.ClientConn
	sync *syncsvc.Server
	// impact previews proposals (ImpactService, and the admin API's dry runs).
	impact *impact.Service
	close  []func() error
	// background runs with the servers: the manifest publisher and, when the
	// store supports governance, the schedule runner and the webhook dispatcher
	// (one per replica; the store makes them safe to run concurrently).
	background []func(ctx context.Context) error
}

// New binds the listeners and builds the servers. ctx bounds start-up work (OIDC
// discovery). Call Run to serve.
func New(ctx context.Context, cfg Config, st Store, log *slog.Logger) (_ *App, err error) {
	// a is not the named result: a failed start returns nil, and the deferred
	// cleanup must still see what was opened.
	a := &App{cfg: cfg, log: log}
	// Calls that make no progress (a trickled request message, a sync stream
	// the peer stopped reading) lose their connection: pkg/limits.
	guard := cfg.Limits.GRPCGuard(log)
	defer func() {
		if err != nil {
			a.cleanup()
		}
	}()
	authn, err := auth.New(ctx, cfg.Auth, st, st, nil)
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.grpc, err = rpc.NewServer(rpc.Options{Auth: authn, Limiter: ratelimit.New(cfg.RateLimit, nil), Logger: log, Registerer: reg,
		// The sync service checks its own service token; health and reflection
		// are open, as for the evaluator (grpcurl and load balancers call them).
		SelfAuthenticated: []string{syncv1.SyncService_ServiceDesc.ServiceName, healthpb.Health_ServiceDesc.ServiceName,
			"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"}},
		grpcOptions(cfg, guard)...)
	if err != nil {
		return nil, err
	}
	if err := a.manifests(cfg, st, reg); err != nil {
		return nil, err
	}
	if cfg.Lifecycle == (lifecycle.Config{}) {
		cfg.Lifecycle = lifecycle.Defaults()
	}
	cfg.Release = cfg.Release.WithDefaults()
	server.Register(a.grpc, st, cfg.Now, server.WithLifecycle(cfg.Lifecycle), server.WithPrometheus(cfg.Release.PrometheusURL != ""),
		server.WithImpact(a.impact))
	// grpc.health.v1 follows the database (as /readyz does); reflection lets
	// grpcurl list and call the API without the protos.
	hs := health.NewServer()
	healthpb.RegisterHealthServer(a.grpc, hs)
	reflection.Register(a.grpc)
	a.background = append(a.background, func(ctx context.Context) error {
		watchHealth(ctx, hs, st, 5*time.Second)
		return nil
	})
	chk, err := auditcheck.New(cfg.Audit, st, reg, cfg.Now, log)
	if err != nil {
		return nil, err
	}
	a.background = append(a.background, chk.Run)
	if g, ok := st.(server.GovernanceStorer); ok {
		if cfg.Schedule == (schedule.Config{}) {
			cfg.Schedule = schedule.Config{PollInterval: time.Second}
		}
		if cfg.Webhooks == (webhook.Config{}) {
			cfg.Webhooks = webhook.Defaults()
		}
		if err := errors.Join(cfg.Schedule.Validate(), cfg.Webhooks.Validate(), cfg.Lifecycle.Validate()); err != nil {
			return nil, err
		}
		runner := schedule.NewRunner(g, cfg.Schedule, cfg.Now, server.FlagConfigCheck, log)
		disp := webhook.NewDispatcher(g, cfg.Webhooks, cfg.Now, nil, log)
		a.background = append(a.background, runner.Run, disp.Run)
	}
	if rp, ok := st.(server.ReleasePlanStorer); ok {
		if err := cfg.Release.Validate(); err != nil {
			return nil, err
		}
		var u release.Usage
		if us, ok := st.(release.Usage); ok {
			u = us
		}
		ev, err := cfg.Release.Evaluator(u, cfg.Now)
		if err != nil {
			return nil, err
		}
		a.background = append(a.background, release.NewRunner(rp, ev, cfg.Release, cfg.Now, server.FlagConfigCheck, log).Run)
	}

	lc := net.ListenConfig{}
	if a.glis, err = lc.Listen(ctx, "tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listen: %w", err)
	}
	a.glis = guard.Listener(a.glis)
	a.close = append(a.close, a.glis.Close)
	if a.hlis, err = lc.Listen(ctx, "tcp", cfg.HTTP.Addr); err != nil {
		return nil, fmt.Errorf("HTTP listen: %w", err)
	}
	a.close = append(a.close, a.hlis.Close)
	// The gateway calls the gRPC server over loopback so every REST call passes
	// the same interceptors as a gRPC call.
	loopCreds := insecure.NewCredentials()
	if cfg.TLS != nil {
		// Our own listener on loopback: its certificate names the public host,
		// not 127.0.0.1, and there is nobody in between to verify against.
		loopCreds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // see above
	}
	if a.conn, err = grpc.NewClient(a.glis.Addr().String(), grpc.WithTransportCredentials(loopCreds),
		grpc.WithContextDialer(guard.LoopbackDialer()),
		// Answers (an export, a manifest, a long list) may exceed gRPC's default 4 MiB;
		// the REST body limit bounds requests, not answers.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(manifest.MaxMessageBytes))); err != nil {
		return nil, fmt.Errorf("gateway connection: %w", err)
	}
	a.close = append(a.close, a.conn.Close)
	// The handlers' context is only used for registration bookkeeping; the
	// connection is closed explicitly at shutdown.
	// The console's OIDC sign-in (code exchange), when OIDC is configured.
	login := httpapi.Routes(oidclogin.NotConfigured)
	if cfg.Auth.OIDCIssuer != "" {
		l, err := oidclogin.New(ctx, oidclogin.Config{Issuer: cfg.Auth.OIDCIssuer, ClientID: cfg.Auth.OIDCAudience,
			ClientSecret: cfg.Auth.OIDCClientSecret, Now: cfg.Now}, log)
		if err != nil {
			return nil, err
		}
		login = l.Routes
	}
	h, err := httpapi.NewHandler(context.WithoutCancel(ctx), a.conn, st, reg, log, cfg.Limits, login)
	if err != nil {
		return nil, err
	}
	a.http = cfg.Limits.Server(h)
	if cfg.TLS != nil {
		a.http.TLSConfig = cfg.TLS.ServerConfig(false, "h2", "http/1.1")
	}
	a.http.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return a, nil
}

// manifests registers the sync service and the manifest download, and adds the
// publisher to the background work. The publisher and the sync streams share one
// in-process fan-out.
func (a *App) manifests(cfg Config, st Store, reg prometheus.Registerer) error {
	m := cfg.Manifests
	if m.Signer == nil {
		return errors.New("app: a manifest signing key is required")
	}
	hub := fanout.New(0)
	pub, err := publisher.New(cfg.Publisher, publisher.Deps{Store: st, Signer: m.Signer, Elector: m.Elector, Hub: hub,
		Redis: m.Redis, Snapshots: m.Snapshots, Metrics: reg, Logger: a.log, Now: cfg.Now})
	if err != nil {
		return err
	}
	if n, ok := st.(outboxNotifier); ok && m.Elector == nil {
		n.OnOutboxCommit(pub.Notify)
		a.close = append(a.close, func() error { n.OnOutboxCommit(nil); return nil })
	}
	syncCfg := cfg.Sync
	syncCfg.RequireClientCert = syncCfg.RequireClientCert || (cfg.TLS != nil && cfg.TLSClientCA)
	seenSvc, err := seencontexts.New(cfg.SeenContexts, st, cfg.Now, a.log)
	if err != nil {
		return err
	}
	adminv1.RegisterSeenContextServiceServer(a.grpc, seenSvc)
	crs, _ := st.(impact.ChangeRequests)
	a.impact = impact.NewService(st, crs, seenSvc)
	adminv1.RegisterImpactServiceServer(a.grpc, a.impact)
	a.background = append(a.background, seenSvc.Run)
	a.sync, err = syncsvc.New(syncCfg, syncsvc.Deps{Store: st, Signer: m.Signer, Hub: hub, Logger: a.log, Contexts: seenSvc})
	if err != nil {
		return err
	}
	syncv1.RegisterSyncServiceServer(a.grpc, a.sync)
	ms, err := manifestsvc.New(st)
	if err != nil {
		return err
	}
	adminv1.RegisterManifestServiceServer(a.grpc, ms)
	es, err := explainsvc.New(st)
	if err != nil {
		return err
	}
	adminv1.RegisterExplainServiceServer(a.grpc, es)
	a.background = append(a.background, pub.Run)
	cs, storageOK := m.Snapshots.(checkpoint.Storage)
	chains, chainsOK := st.(checkpoint.Chains)
	if storageOK && chainsOK && cfg.Checkpoints.Interval > 0 {
		if err := cfg.Checkpoints.Validate(); err != nil {
			return err
		}
		w := checkpoint.NewWriter(cfg.Checkpoints, chains, cs, m.Signer, a.log, cfg.Now)
		a.background = append(a.background, func(ctx context.Context) error { w.Run(ctx); return nil })
	}
	return nil
}

// watchHealth sets the gRPC health of the server ("") to SERVING while the
// database answers a ping, checking every period, until ctx ends (then
// NOT_SERVING for good).
func watchHealth(ctx context.Context, hs *health.Server, db httpapi.Pinger, every time.Duration) {
	check := func() {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		st := healthpb.HealthCheckResponse_SERVING
		if err := db.Ping(pctx); err != nil {
			st = healthpb.HealthCheckResponse_NOT_SERVING
		}
		hs.SetServingStatus("", st)
	}
	check()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			hs.Shutdown()
			return
		case <-t.C:
			check()
		}
	}
}

// grpcOptions are the gRPC server's options: the request limits and, with TLS,
// the transport credentials (client certificates verified when presented; the
// sync service then requires one).
func grpcOptions(cfg Config, guard *limits.GRPCGuard) []grpc.ServerOption {
	opts := guard.ServerOptions()
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS.ServerConfig(false, "h2"))))
	}
	return opts
}

// GRPCAddr is the bound gRPC address.
func (a *App) GRPCAddr() string { return a.glis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string { return a.hlis.Addr().String() }

// Run serves until ctx is done, then shuts down gracefully: HTTP first (drains the
// gateway), then gRPC (GracefulStop, cut off after the timeout).
func (a *App) Run(ctx context.Context) error {
	defer a.cleanup()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := a.grpc.Serve(a.glis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		serve := a.http.Serve
		if a.http.TLSConfig != nil {
			serve = func(l net.Listener) error { return a.http.ServeTLS(l, "", "") }
		}
		if err := serve(a.hlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	for _, run := range a.background {
		g.Go(func() error { return run(gctx) })
	}
	a.log.InfoContext(ctx, "serving", slog.String("grpc_addr", a.GRPCAddr()), slog.String("http_addr", a.HTTPAddr()))
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), a.cfg.HTTP.ShutdownTimeout)
		defer cancel()
		if err := a.http.Shutdown(sctx); err != nil {
			a.log.Warn("HTTP shutdown", slog.Any("error", err))
		}
		// Sync streams never end on their own; GracefulStop would wait for them.
		a.sync.Drain()
		stopped := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(a.cfg.GRPCShutdownTimeout):
			a.log.Warn("gRPC graceful stop timed out; stopping")
			a.grpc.Stop()
		}
		return nil
	})
	return g.Wait()
}

func (a *App) cleanup() {
	for i := len(a.close) - 1; i >= 0; i-- {
		_ = a.close[i]()
	}
	a.close = nil
}
