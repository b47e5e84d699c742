// Command flagforge-evaluator serves flag evaluations from signed manifests.
//
//	flagforge-evaluator [flags]
//	flagforge-evaluator healthcheck [-addr ADDR]   GET /healthz of the local process
//	                                               (exit 0 on 2xx): container HEALTHCHECK
//
// Configuration comes from FLAGFORGE_* environment variables and flags (see
// internal/config and docs/evaluator.md). SIGINT or SIGTERM drains gracefully.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"

	"github.com/flagforge/flagforge/pkg/logrelay"
	"github.com/flagforge/flagforge/pkg/probe"
	"github.com/flagforge/flagforge/services/evaluator/internal/app"
	"github.com/flagforge/flagforge/services/evaluator/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flagforge-evaluator:", err)
		os.Exit(1)
	}
}

// run loads the configuration, assembles the evaluator and serves until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "healthcheck" {
		return probe.Command(ctx, args[1:], "127.0.0.1:8081", stderr)
	}
	fs := flag.NewFlagSet("flagforge-evaluator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, err := config.Load(ctx, fs, args, nil)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	level, _ := cfg.SlogLevel()
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	// go-redis logs its own dial failures; they go through our JSON log, a few a minute.
	redis.SetLogger(logrelay.New(logrelay.Config{Logger: log, Source: "go-redis"}))
	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
