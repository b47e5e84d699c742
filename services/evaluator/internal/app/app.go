// Package app assembles the evaluator from its configuration: the holder (loaded
// from the local copies first), the manifest source, the gRPC server, the HTTP
// server (REST gateway, health, metrics) and the readiness watcher, and runs them
// until the context ends, then drains gracefully.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
	"github.com/flagforge/flagforge/services/evaluator/internal/holder"
	"github.com/flagforge/flagforge/services/evaluator/internal/server"
	"github.com/flagforge/flagforge/services/evaluator/internal/source"
)

// App is an assembled evaluator whose listeners are open.
type App struct {
	cfg      *config.Config
	log      *slog.Logger
	Holder   *holder.Holder
	Registry *prometheus.Registry
	source   source.Source
	closers  []func() error
	grpc     *grpc.Server
	health   *health.Server
	http     *http.Server
	grpcLis  net.Listener
	httpLis  net.Listener
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
	a.Holder, err = holder.New(holder.Config{
		Verifier: verifier, Environments: cfg.EnvironmentList(), DataDir: cfg.DataDir,
		Logger: log, Registerer: a.Registry,
	})
	if err != nil {
		return nil, err
	}
	if n := a.Holder.LoadLocal(); n > 0 {
		log.Info("loaded local manifest copies", "count", n, "data_dir", cfg.DataDir)
	}

	switch {
	case cfg.RedisURL != "":
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("FLAGFORGE_REDIS_URL: %w", err)
		}
		client := redis.NewClient(opts)
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
		}, a.Holder)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, s.Close)
		a.source = s
	default:
		log.Warn("no manifest source configured (FLAGFORGE_REDIS_URL or FLAGFORGE_SYNC_ADDR): serving local copies only")
	}

	svc, err := server.New(server.Config{Registerer: a.Registry}, a.Holder)
	if err != nil {
		return nil, err
	}
	a.health = health.NewServer()
	a.grpc = server.NewGRPC(svc, a.health)
	gw, err := server.NewGateway(ctx, svc)
	if err != nil {
		return nil, err
	}
	a.http = &http.Server{
		Handler:           server.NewHTTP(gw, a.Holder.Ready, a.Registry),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var lc net.ListenConfig
	if a.grpcLis, err = lc.Listen(ctx, "tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if a.httpLis, err = lc.Listen(ctx, "tcp", cfg.HTTPAddr); err != nil {
		return nil, fmt.Errorf("HTTP listener: %w", err)
	}
	return a, nil
}

// GRPCAddr is the bound gRPC address.
func (a *App) GRPCAddr() string { return a.grpcLis.Addr().String() }

// HTTPAddr is the bound HTTP address.
func (a *App) HTTPAddr() string { return a.httpLis.Addr().String() }

func (a *App) close() {
	for _, c := range a.closers {
		_ = c()
	}
	for _, l := range []net.Listener{a.grpcLis, a.httpLis} {
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
	g.Go(func() error {
		if err := a.grpc.Serve(a.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := a.http.Serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
		sctx, cancel := context.WithTimeout(context.WithoutCancel(gctx), a.cfg.ShutdownTimeout)
		defer cancel()
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
