// Package sqlite is the embedded store backend: a single SQLite file (pure Go,
// modernc.org/sqlite, no cgo) in WAL mode with foreign keys on. It is an adapter
// around sqlstore: it opens the database, applies the embedded migrations and
// translates SQLite errors into pkg/errs.
//
// Writes go through a pool of one connection that begins transactions with
// BEGIN IMMEDIATE, so there is one writer at a time and the organization's audit
// chain needs no further lock; reads use a separate pool (WAL lets them run while a
// write is in progress).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"github.com/pressly/goose/v3"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store is the SQLite store.
type Store struct {
	*sqlstore.Store
}

var _ store.Store = (*Store)(nil)

// dsn builds the connection string of the database file at path.
func dsn(path string, write bool) string {
	v := url.Values{}
	v.Add("_pragma", "busy_timeout(10000)")
	v.Add("_pragma", "journal_mode(WAL)")
	v.Add("_pragma", "foreign_keys(1)")
	v.Add("_pragma", "synchronous(NORMAL)")
	if write {
		v.Set("_txlock", "immediate")
	}
	return "file:" + path + "?" + v.Encode()
}

func openDB(path string, write bool) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, write))
	if err != nil {
		return nil, err
	}
	if write {
		db.SetMaxOpenConns(1)
	} else {
		db.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	}
	db.SetConnMaxIdleTime(0)
	db.SetConnMaxLifetime(0)
	return db, nil
}

// Open opens (creating it and its directory if needed) the database file at path,
// applies pending migrations and returns the store.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create data directory: %w", err)
		}
	}
	wdb, err := openDB(path, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := migrate(ctx, wdb); err != nil {
		_ = wdb.Close()
		return nil, err
	}
	db, err := openDB(path, false)
	if err != nil {
		_ = wdb.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{Store: sqlstore.New(db, wdb, dialect)}, nil
}

// Migrate applies pending migrations to the database file at path.
func Migrate(ctx context.Context, path string) error {
	db, err := openDB(path, true)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	defer func() { _ = db.Close() }()
	return migrate(ctx, db)
}

func migrate(ctx context.Context, db *sql.DB) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, fsys)
	if err != nil {
		return fmt.Errorf("sqlite: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

var dialect = sqlstore.Dialect{
	Name:           "sqlite",
	TranslateError: translate,
}

// translate converts SQLite errors into pkg/errs kinds.
func translate(err error) error {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return nil
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return errs.Wrap(errs.AlreadyExists, err, "already exists")
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return errs.Wrap(errs.FailedPrecondition, err, "a referenced resource is missing or still in use")
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return errs.Wrap(errs.Unavailable, err, "database busy")
	}
	return nil
}
