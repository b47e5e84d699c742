// Package sqlstore implements store.Store once, on database/sql, for every SQL
// backend. The backends (store/postgres, store/sqlite) are thin adapters: they open
// the database, apply migrations and supply a Dialect (placeholders, row locking,
// the audit-chain lock and driver error translation).
//
// Queries are written once with "?" placeholders and rebound for the dialect. Times
// are stored as Unix microseconds (0 = unset); resource bodies as protobuf binary
// next to indexed columns. Every write goes through inTx, which runs the state
// change, the Check callback, the outbox row and the audit entry in one transaction.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

var _ store.Store = (*Store)(nil)

// Dialect is what differs between SQL backends.
type Dialect struct {
	// Name is used in error messages ("postgres", "sqlite").
	Name string
	// Numbered rebinds "?" placeholders to "$1", "$2", ... (PostgreSQL).
	Numbered bool
	// ForUpdate is appended to reads of a row that is about to be changed
	// (" FOR UPDATE" on PostgreSQL; empty on SQLite, whose writer is exclusive).
	ForUpdate string
	// LockAuditChain serializes appends to one organization's audit chain until the
	// transaction ends. nil: the backend's writes are already serialized.
	LockAuditChain func(ctx context.Context, tx *sql.Tx, org string) error
	// AfterChainCommit, when set, runs after the commit of every transaction that
	// appended to an audit chain (see the postgres dialect: its chain lock makes
	// the commit durable asynchronously, and this waits for durability outside
	// the lock). Its error means the write's durability is unknown.
	AfterChainCommit func(ctx context.Context, db *sql.DB) error
	// SHA256Hex wraps a SQL text expression into one computing its SHA-256 as
	// lowercase hex. When set, audit entries are appended in one statement with the
	// hash computed by the database; nil: read the head, hash in Go, insert.
	SHA256Hex func(expr string) string
	// SnapshotTx are the options of read transactions that must see one snapshot.
	SnapshotTx *sql.TxOptions
	// TranslateError converts a driver error into a pkg/errs error, or returns nil
	// when it does not recognise it.
	TranslateError func(err error) error
}

// Store implements store.Store on database/sql.
type Store struct {
	db  *sql.DB // reads
	wdb *sql.DB // writes (the same pool as db on PostgreSQL; one connection on SQLite)
	d   Dialect
	now func() time.Time
	// outboxHook runs after each commit that appended an outbox row (OnOutboxCommit).
	outboxHook atomic.Pointer[func()]
}

// New returns a Store reading from db and writing through wdb (which may be db).
// The caller keeps ownership of both pools; Close closes them.
func New(db, wdb *sql.DB, d Dialect) *Store {
	return &Store{db: db, wdb: wdb, d: d, now: time.Now}
}

// SetClock replaces the clock that stamps writes (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// Ping checks that the database is reachable.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return errs.Wrap(errs.Unavailable, err, "database unreachable")
	}
	return nil
}

// Close closes the connection pools.
func (s *Store) Close() error {
	err := s.db.Close()
	if s.wdb != s.db {
		err = errors.Join(err, s.wdb.Close())
	}
	return err
}

// rebind turns "?" placeholders into the dialect's form. Queries never contain a
// literal "?" in a string, so a plain scan is safe.
func (s *Store) rebind(q string) string {
	if !s.d.Numbered {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// checkError carries a Check callback's error through inTx untouched.
type checkError struct{ err error }

func (e checkError) Error() string { return e.err.Error() }
func (e checkError) Unwrap() error { return e.err }

// translate turns any error into a pkg/errs error (or a context error).
func (s *Store) translate(err error) error {
	if err == nil {
		return nil
	}
	var ce checkError
	if errors.As(err, &ce) {
		return ce.err
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if s.d.TranslateError != nil {
		if t := s.d.TranslateError(err); t != nil {
			return t
		}
	}
	return errs.Wrap(errs.Internal, err, s.d.Name+" store")
}

// Tx is a write transaction.
type Tx struct {
	s   *Store
	tx  *sql.Tx
	now time.Time
	// chained is set once the transaction appended an audit entry.
	chained bool
}

// inTx runs fn in one write transaction and commits when it returns nil. Every
// write of the store goes through here.
func (s *Store) inTx(ctx context.Context, fn func(t *Tx) error) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return s.translate(err)
	}
	t := &Tx{s: s, tx: tx, now: s.now().UTC().Truncate(time.Microsecond)}
	if err := fn(t); err != nil {
		_ = tx.Rollback()
		return s.translate(err)
	}
	if err := tx.Commit(); err != nil {
		return s.translate(err)
	}
	if t.chained && s.d.AfterChainCommit != nil {
		if err := s.d.AfterChainCommit(ctx, s.wdb); err != nil {
			return errs.Wrap(errs.Unavailable, err, "the write was committed but its durability is not confirmed")
		}
	}
	if t.chained {
		if h := s.outboxHook.Load(); h != nil {
			(*h)()
		}
	}
	return nil
}

// querier is what reads need: a *sql.DB, a *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q is a querier that rebinds placeholders.
type q struct {
	s  *Store
	db querier
}

func (x q) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return x.db.ExecContext(ctx, x.s.rebind(query), args...)
}

func (x q) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return x.db.QueryContext(ctx, x.s.rebind(query), args...)
}

func (x q) row(ctx context.Context, query string, args ...any) *sql.Row {
	return x.db.QueryRowContext(ctx, x.s.rebind(query), args...)
}

// r reads outside a transaction.
func (s *Store) r() q { return q{s: s, db: s.db} }

// q returns the transaction's querier.
func (t *Tx) q() q { return q{s: t.s, db: t.tx} }

// readTx runs fn in a read-only snapshot transaction.
func (s *Store) readTx(ctx context.Context, fn func(x q) error) error {
	tx, err := s.db.BeginTx(ctx, s.d.SnapshotTx)
	if err != nil {
		return s.translate(err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(q{s: s, db: tx}); err != nil {
		return s.translate(err)
	}
	return nil
}

// micros stores a time as Unix microseconds (0 for the zero time).
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros.
func fromMicros(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

// newID returns a UUIDv7.
func newID() (string, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "generate id")
	}
	return id.String(), nil
}

// notFound is the error for a missing resource.
func notFound(what, key string) error {
	return errs.E(errs.NotFound, "%s %q not found", what, key)
}

// stale is the error for a revision mismatch.
func stale(what, key string, have, want int64) error {
	return errs.E(errs.Aborted, "%s %q: revision %d is stale (current %d)", what, key, want, have)
}

// staleField is stale naming the request field that carried the revision.
func staleField(field, what, key string, have, want int64) error {
	return &errs.Error{Kind: errs.Aborted, Field: field, Message: fmt.Sprintf("%s %q: revision %d is stale (current %d)", what, key, want, have)}
}

// affected returns the rows a statement changed.
func affected(res sql.Result) (int64, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	return n, nil
}
