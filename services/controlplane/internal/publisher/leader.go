package publisher

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
)

// Signals are what an Elector reports besides leadership.
type Signals struct {
	// Wake is called when the outbox may have new rows (never blocks).
	Wake func()
	// Stored is called on a standby with "org/project/environment version" when
	// the leader stored a version (for the local sync streams).
	Stored func(payload string)
}

// Elector decides which process publishes.
type Elector interface {
	// Acquire blocks until this process is the leader (or ctx ends). The returned
	// context ends when leadership is lost; release gives leadership up and must be
	// called.
	Acquire(ctx context.Context, s Signals) (lead context.Context, release func(), err error)
}

// Local is the elector of a single process (SQLite): always the leader. Wake-ups
// come from the store's commit hook (Publisher.Notify).
type Local struct{}

// Acquire returns at once.
func (Local) Acquire(ctx context.Context, _ Signals) (context.Context, func(), error) {
	lead, cancel := context.WithCancel(ctx)
	return lead, cancel, nil
}

// LockKey is the PostgreSQL advisory lock key the leader holds.
const LockKey int64 = 7_346_112_101

// Notification channels (see the 00002 migration's triggers).
const (
	outboxChannel    = "flagforge_outbox"
	manifestsChannel = "flagforge_manifests"
)

// Postgres elects the leader with a session advisory lock held on a dedicated
// connection (not the pool: a pooled connection would be handed to other work and
// the lock with it). The leader LISTENs for outbox notifications on the same
// connection and checks it every Heartbeat; when the connection fails, leadership
// is lost (the server releases the lock when it sees the session end; the fencing
// epoch protects the interval). Standbys retry the lock every Retry and, while
// waiting, LISTEN for stored versions to feed their local sync streams.
type Postgres struct {
	cfg       *pgx.ConnConfig
	Retry     time.Duration
	Heartbeat time.Duration
	Log       *slog.Logger
}

// NewPostgres returns an elector connecting to url.
func NewPostgres(url string, log *slog.Logger) (*Postgres, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	// Time out waits for notifications with a deadline on the socket rather than a
	// cancel request (which would open a connection each time).
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Postgres{cfg: cfg, Retry: 250 * time.Millisecond, Heartbeat: time.Second, Log: log}, nil
}

// Acquire implements Elector.
func (e *Postgres) Acquire(ctx context.Context, s Signals) (context.Context, func(), error) {
	for {
		conn, err := e.standby(ctx, s)
		if err != nil {
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			e.Log.WarnContext(ctx, "publisher standby connection failed; retrying", "err", err)
			if !sleep(ctx, e.Retry) {
				return nil, nil, ctx.Err()
			}
			continue
		}
		lead, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			e.watch(lead, conn, s)
			cancel()
		}()
		release := func() {
			cancel()
			<-done
			c, stop := context.WithTimeout(context.Background(), 5*time.Second)
			defer stop()
			// Closing the session releases the lock.
			_ = conn.Close(c)
		}
		return lead, release, nil
	}
}

// standby connects and waits for the lock, LISTENing for stored versions.
func (e *Postgres) standby(ctx context.Context, s Signals) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, e.cfg)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*pgx.Conn, error) {
		c, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = conn.Close(c)
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+manifestsChannel); err != nil {
		return fail(err)
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", LockKey).Scan(&got); err != nil {
			return fail(err)
		}
		if got {
			if _, err := conn.Exec(ctx, "UNLISTEN "+manifestsChannel+"; LISTEN "+outboxChannel); err != nil {
				return fail(err)
			}
			return conn, nil
		}
		deadline := time.Now().Add(e.Retry)
		for time.Now().Before(deadline) {
			n, err := waitNotification(ctx, conn, time.Until(deadline))
			if err != nil {
				return fail(err)
			}
			if n != nil && n.Channel == manifestsChannel && s.Stored != nil {
				s.Stored(n.Payload)
			}
		}
	}
}

// watch runs while leading: it turns outbox notifications into wake-ups and
// checks the session every Heartbeat. It returns when lead ends or the
// connection fails.
func (e *Postgres) watch(lead context.Context, conn *pgx.Conn, s Signals) {
	for lead.Err() == nil {
		n, err := waitNotification(lead, conn, e.Heartbeat)
		if err != nil {
			if lead.Err() == nil {
				e.Log.ErrorContext(lead, "publisher lock connection failed; leadership lost", "err", err)
			}
			return
		}
		if n != nil {
			if s.Wake != nil {
				s.Wake()
			}
			continue
		}
		ping, stop := context.WithTimeout(lead, e.Heartbeat+5*time.Second)
		_, err = conn.Exec(ping, "SELECT 1")
		stop()
		if err != nil {
			if lead.Err() == nil {
				e.Log.ErrorContext(lead, "publisher lock connection failed; leadership lost", "err", err)
			}
			return
		}
	}
}

// waitNotification waits up to d; a nil notification and nil error is a timeout.
func waitNotification(ctx context.Context, conn *pgx.Conn, d time.Duration) (*pgconn.Notification, error) {
	if d <= 0 {
		return nil, nil
	}
	wctx, stop := context.WithTimeout(ctx, d)
	defer stop()
	n, err := conn.WaitForNotification(wctx)
	if err == nil {
		return n, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		if conn.IsClosed() {
			return nil, err
		}
		return nil, nil
	}
	return nil, err
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
