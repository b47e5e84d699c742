// Package app assembles the evaluator from its configuration: the stream hub, the
// holder (loaded from the local copies first), the manifest source, the usage
// reporter, the gRPC server, the HTTP server (REST gateway, NDJSON stream, SSE,
// manifest polling, health, metrics), the admin (pprof) listener and the readiness
// watcher, and runs them until the context ends, then drains gracefully: streams
// are told "draining" and closed first, then the servers stop.
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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"

	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/redisconn"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/limit"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
	"github.com/flagforge/flagforge/services/evaluator/internal/source"
	"github.com/flagforge/flagforge/services/evaluator/internal/telemetry"
	"github.com/flagforge/flagforge/services/evaluator/internal/usage"
)

// App is an assembled evaluator whose listeners are open.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	Holder   *holder.Holder
	Hub      *broadcast.Hub
	Registry *prometheus.Registry
	source   source.Source
	reporter *usage.Reporter
	limiter  *limit.Limiter
	closers  []func() error
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	admin    *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
	adminLis net.Listener
	tracing  func(context.Context) error
}

// New validates cfg, loads the local manifest copies and opens the listeners.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger) (_ *App, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	keys, err := cfg.PublicKeys()
	if err != nil {
		return nil, err
	}
	verifier, err := manifest.NewVerifier(nil, keys...)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, log: log, Registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	a.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var lc net.ListenConfig
	if a.grpcLis, err = lc.Listen(ctx, "tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if a.httpLis, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP listener: %w", err)
	}
	if cfg.AdminAddr != "" {
		if a.adminLis, err = lc.Listen(ctx, "tcp", cfg.AdminAddr); err != nil {
			return nil, fmt.Errorf("admin listener: %w", err)
		}
		a.admin = &http.Server{Handler: telemetry.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	}
	a.Hub, err = broadcast.New(broadcast.Config{
		Buffer: cfg.StreamBuffer, Ring: cfg.StreamRing, Heartbeat: cfg.StreamHeartbeat,
		MaxPerKey: cfg.MaxStreamsPerKey, MaxStreams: cfg.MaxStreams, Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	a.Holder, err = holder.New(holder.Config{
		Verifier: verifier, Environments: cfg.EnvironmentList(), DataDir: cfg.DataDir,
		Logger: log, Registerer: a.Registry, OnUpdate: a.Hub.Publish,
	})
	if err != nil {
		return nil, err
	}
	if n := a.Holder.LoadLocal(); n > 0 {
		log.Info("loaded local manifest copies", "count", n, "data_dir", cfg.DataDir)
	}

	cpCreds, listenerTLS, err := transportSecurity(cfg, log)
	if err != nil {
		return nil, err
	}
	var usageConn *grpc.ClientConn
	switch {
	case cfg.RedisURL != "":
		// One node, a Sentinel-managed primary or a cluster (pkg/redisconn).
		client, err := redisconn.Open(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("FLAGFORGE_REDIS_URL: %w", err)
		}
		a.closers = append(a.closers, client.Close)
		a.source, err = source.NewRedis(source.RedisConfig{
			Client: client, Prefix: cfg.RedisKeyPrefix, Environments: cfg.EnvironmentList(),
			Resync: cfg.ResyncInterval, Logger: log,
		}, a.Holder)
		if err != nil {
			return nil, err
		}
	case cfg.SyncAddr != "":
		s, err := source.NewSync(source.SyncConfig{
			Addr: cfg.SyncAddr, Token: cfg.SyncToken, Environments: cfg.EnvironmentList(), Logger: log,
			DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(cpCreds)},
		}, a.Holder)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, s.Close)
		a.source = s
		usageConn = s.Conn()
	default:
		log.Warn("no manifest source configured (FLAGFORGE_REDIS_URL or FLAGFORGE_SYNC_ADDR): serving local copies only")
	}

	var counter *usage.Counter
	if usageConn == nil && cfg.UsageAddr != "" {
		if usageConn, err = grpc.NewClient(cfg.UsageAddr, grpc.WithTransportCredentials(cpCreds)); err != nil {
			return nil, fmt.Errorf("FLAGFORGE_USAGE_ADDR: %w", err)
		}
		a.closers = append(a.closers, usageConn.Close)
	}
	if usageConn != nil {
		if counter, err = usage.NewCounter(0, a.Registry); err != nil {
			return nil, err
		}
		if cfg.SeenContextsPerMinute > 0 {
			counter.SampleContexts(cfg.SeenContextsPerMinute)
		}
		a.reporter, err = usage.NewReporter(usage.ReporterConfig{
			Client: syncv1.NewSyncServiceClient(usageConn), Interval: cfg.UsageInterval, Token: cfg.SyncToken,
			Logger: log, Registerer: a.Registry,
		}, counter)
		if err != nil {
			return nil, err
		}
	} else {
		log.Info("no control plane address (FLAGFORGE_SYNC_ADDR or FLAGFORGE_USAGE_ADDR): evaluations are not counted")
	}

	a.limiter = limit.New(cfg.RateLimit, cfg.RateBurst)
	svc, err := server.New(server.Config{Registerer: a.Registry, Hub: a.Hub, Limiter: a.limiter, Usage: counter,
		MaxBodyBytes: cfg.Limits.MaxBodyBytes}, a.Holder)
	if err != nil {
		return nil, err
	}
	traceOpts, shutdownTracing, err := telemetry.Tracing(ctx, cfg.OTLPEndpoint, "flagforge-evaluator")
	if err != nil {
		return nil, fmt.Errorf("FLAGFORGE_OTEL_EXPORTER_OTLP_ENDPOINT: %w", err)
	}
	a.tracing = shutdownTracing
	a.health = health.NewServer()
	// Calls that make no progress (a trickled request message, a stream the
	// peer stopped reading) lose their connection: pkg/limits.
	guard := cfg.Limits.GRPCGuard(log)
	a.grpcLis = guard.Listener(a.grpcLis)
	grpcOpts := append(guard.ServerOptions(), traceOpts...)
	loopCreds := insecure.NewCredentials()
	if listenerTLS != nil {
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(listenerTLS.ServerConfig(false, "h2"))))
		// Our own listener on loopback: nothing in between to verify against.
		loopCreds = credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // see above
	}
	a.grpc = server.NewGRPC(svc, a.health, grpcOpts...)
	gw, err := server.NewGateway(ctx, svc)
	if err != nil {
		return nil, err
	}
	// grpc-gateway streams only through a client: /v1/stream goes through a
	// loopback connection to our own gRPC listener.
	// It carries every /v1/stream: the guard never cuts it for one slow stream
	// (each has its own HTTP write deadline).
	loop, err := grpc.NewClient(loopback(a.grpcLis.Addr()), grpc.WithTransportCredentials(loopCreds),
		grpc.WithContextDialer(guard.LoopbackDialer()),
		// A manifest answer is one message: gRPC's default 4 MiB would refuse large environments.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(manifest.MaxMessageBytes)))
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, loop.Close)
	sgw, err := server.NewStreamGateway(ctx, loop)
	if err != nil {
		return nil, err
	}
	// Every request is bounded (body size, read timeouts, HTTP/2 pings): see
	// pkg/limits.
	a.http = cfg.Limits.Server(server.NewHTTP(server.HTTPConfig{
		Gateway: gw, Stream: sgw, Service: svc, Ready: a.Holder.Ready, Freshness: a.Holder.Freshness, Gatherer: a.Registry,
		CORSOrigins: cfg.CORSOriginList(), StreamWriteTimeout: cfg.Limits.StreamWriteTimeout,
		HTTP1StreamMaxAge: cfg.Limits.HTTP1StreamMaxAge,
	}))
	a.http.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	if listenerTLS != nil {
		a.http.TLSConfig = listenerTLS.ServerConfig(false, "h2", "http/1.1")
	}
	return a, nil
}

// transportSecurity loads the TLS files: the credentials of connections to the
// control plane (plaintext without TLS settings) and the listeners' reloader
// (nil: plaintext). Reload failures are logged; the previous files stay in use.
func transportSecurity(cfg *config.Config, log *slog.Logger) (credentials.TransportCredentials, *tlsfiles.Reloader, error) {
	onErr := func(err error) {
		log.Error("TLS files could not be reloaded; the previous certificate stays in use", "error", err)
	}
	cp := insecure.NewCredentials()
	if f, ok := cfg.ControlPlaneTLS(); ok {
		r, err := tlsfiles.New(f, onErr)
		if err != nil {
			return nil, nil, fmt.Errorf("FLAGFORGE_SYNC_TLS_*: %w", err)
		}
		cp = credentials.NewTLS(r.ClientConfig())
	}
	var listener *tlsfiles.Reloader
	if f := cfg.ListenerTLS(); f.Enabled() {
		var err error
		if listener, err = tlsfiles.New(f, onErr); err != nil {
			return nil, nil, fmt.Errorf("FLAGFORGE_TLS_*: %w", err)
		}
	}
	return cp, listener, nil
}

// loopback is a dialable address of the listener at addr (an unspecified host
// becomes the loopback address).
func loopback(addr net.Addr) string {
	host, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// AdminAddr is the bound admin (pprof) address, "" when disabled.
func (a *App) AdminAddr() string {
	if a.adminLis == nil {
		return ""
	}
	return a.adminLis.Addr().String()
}

// GRPCAddr is the bound gRPC address.
func (a *App) GRPCAddr() string { return a.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string { return a.httpLis.Addr().String() }

func (a *App) close() {
	for _, c := range a.closers {
		_ = c()
	}
	for _, l := range []net.Listener{a.grpcLis, a.httpLis, a.adminLis} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// Run serves until ctx ends, then stops accepting, lets in-flight calls finish
// (bounded by the shutdown timeout) and returns.
func (a *App) Run(ctx context.Context) error {
	defer a.close()
	g, gctx := errgroup.WithContext(ctx)
	// Components stop when ctx ends or another component fails.
	if a.source != nil {
		g.Go(func() error { return a.source.Run(gctx) })
	}
	g.Go(func() error {
		server.WatchReadiness(gctx, a.health, a.Holder.Ready, 250*time.Millisecond)
		return nil
	})
	g.Go(func() error { return a.Hub.Run(gctx) })
	if a.reporter != nil {
		g.Go(func() error { return a.reporter.Run(gctx) })
	}
	if a.limiter.Enabled() {
		g.Go(func() error {
			t := time.NewTicker(time.Minute)
			defer t.Stop()
			for {
				select {
				case <-gctx.Done():
					return nil
				case now := <-t.C:
					a.limiter.Sweep(now.Add(-10 * time.Minute))
				}
			}
		})
	}
	if a.admin != nil {
		g.Go(func() error {
			if err := a.admin.Serve(a.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := a.grpc.Serve(a.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		serve := a.http.Serve
		if a.http.TLSConfig != nil {
			serve = func(l net.Listener) error { return a.http.ServeTLS(l, "", "") }
		}
		if err := serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), a.cfg.ShutdownTimeout)
		defer cancel()
		// Streams never end on their own: tell them to reconnect elsewhere first.
		a.Hub.Drain()
		if a.admin != nil {
			_ = a.admin.Close()
		}
		defer func() { _ = a.tracing(sctx) }()
		done := make(chan struct{})
		go func() { a.grpc.GracefulStop(); close(done) }()
		herr := a.http.Shutdown(sctx)
		select {
		case <-done:
		case <-sctx.Done():
			a.grpc.Stop()
			<-done
		}
		if herr != nil {
			return fmt.Errorf("HTTP shutdown: %w", herr)
		}
		return nil
	})
	a.log.Info("evaluator serving", "grpc_addr", a.GRPCAddr(), "http_addr", a.HTTPAddr(),
		"environments", a.cfg.Environments)
	return g.Wait()
}
