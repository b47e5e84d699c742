package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/flagforge/flagforge/services/controlplane/internal/config"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

func storePage(token string) store.Page { return store.Page{Size: 1000, Token: token} }

// openStore opens the configured backend. Open applies pending migrations; with a
// migration URL they are applied with it first (PostgreSQL: as the schema owner).
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	kind, target, err := config.ParseDatabaseURL(cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	if cfg.MigrateDatabaseURL != "" {
		// Migrate as the schema owner first; Open (as the application role) then
		// finds nothing pending.
		if err := migrateStore(ctx, cfg); err != nil {
			return nil, err
		}
	}
	switch kind {
	case config.SQLite:
		log.InfoContext(ctx, "opening store", slog.String("backend", kind), slog.String("path", target))
		return sqlite.Open(ctx, target)
	case config.Postgres:
		log.InfoContext(ctx, "opening store", slog.String("backend", kind))
		return postgres.Open(ctx, target)
	default:
		return nil, fmt.Errorf("unknown database kind %q", kind)
	}
}

// migrateStore applies migrations (with the migration URL when set).
func migrateStore(ctx context.Context, cfg *config.Config) error {
	url := cfg.DatabaseURL
	if cfg.MigrateDatabaseURL != "" {
		url = cfg.MigrateDatabaseURL
	}
	kind, target, err := config.ParseDatabaseURL(url)
	if err != nil {
		return err
	}
	switch kind {
	case config.SQLite:
		return sqlite.Migrate(ctx, target)
	case config.Postgres:
		return postgres.Migrate(ctx, target)
	default:
		return fmt.Errorf("unknown database kind %q", kind)
	}
}
