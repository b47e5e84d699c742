// Package testpg gives tests a fresh, migrated PostgreSQL database each.
//
// The first call in a test binary builds a template database with every migration
// applied (once per migration set, shared by parallel test binaries through a
// PostgreSQL advisory lock); each New then clones it with CREATE DATABASE ...
// TEMPLATE and drops the clone when the test ends.
//
// The server is FLAGFORGE_TEST_POSTGRES_URL (default DefaultURL), connected to as a
// superuser. When it is unreachable, tests are skipped with a loud message, except
// under CI=true, where they fail.
package testpg

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
)

// DefaultURL is the server used when FLAGFORGE_TEST_POSTGRES_URL is unset.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AppLoginRole is the login role AppURL connects as (a member of flagforge_app).
const AppLoginRole = "flagforge_app_test"

// lockKey is the advisory lock that serializes template creation and role setup
// across test binaries.
const lockKey int64 = 7_346_112_001

// ServerURL returns the URL of the test server.
func ServerURL() string {
	if u := os.Getenv("FLAGFORGE_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// New returns the URL of a fresh migrated database, owned by the server's
// superuser and dropped when t ends.
func New(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	admin := connect(t, ServerURL())
	defer func() { _ = admin.Close(ctx) }()

	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx, admin) })
	if templateErr != nil {
		t.Fatalf("testpg: template database: %v", templateErr)
	}
	name := "flagforge_test_" + randomSuffix()
	var err error
	for range 50 {
		_, err = admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, templateName))
		var pe *pgconn.PgError
		if err == nil || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use: template busy
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("testpg: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, ServerURL())
		if err != nil {
			t.Errorf("testpg: drop %s: %v", name, err)
			return
		}
		defer func() { _ = c.Close(ctx) }()
		if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Errorf("testpg: drop %s: %v", name, err)
		}
	})
	return withDatabase(ServerURL(), name)
}

// AppURL returns dbURL with the user replaced by AppLoginRole, a login role that
// is a member of flagforge_app (created when missing): how the service connects in
// production.
func AppURL(t testing.TB, dbURL string) string {
	t.Helper()
	ctx := context.Background()
	admin := connect(t, ServerURL())
	defer func() { _ = admin.Close(ctx) }()
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		t.Fatalf("testpg: lock: %v", err)
	}
	defer func() { _, _ = admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey) }()
	var exists, member bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		pg_has_role($1, $2, 'MEMBER') IS TRUE AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)`,
		AppLoginRole, postgres.AppRole).Scan(&exists, &member); err != nil {
		// pg_has_role fails when the login role does not exist yet.
		exists, member = false, false
	}
	if !exists {
		if _, err := admin.Exec(ctx, "CREATE ROLE "+AppLoginRole+" LOGIN"); err != nil {
			t.Fatalf("testpg: create app role: %v", err)
		}
	}
	if !member {
		if _, err := admin.Exec(ctx, "GRANT "+postgres.AppRole+" TO "+AppLoginRole); err != nil {
			t.Fatalf("testpg: grant app role: %v", err)
		}
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("testpg: %v", err)
	}
	u.User = url.User(AppLoginRole)
	return u.String()
}

// connect connects to the server, skipping (or, under CI, failing) the test when
// it cannot.
func connect(t testing.TB, u string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u)
	if err != nil {
		msg := fmt.Sprintf("SKIPPING: PostgreSQL not reachable at %s (set FLAGFORGE_TEST_POSTGRES_URL): %v", redact(u), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return c
}

// ensureTemplate returns the name of the migrated template database, building it
// if no test binary has yet. The name carries a hash of the migrations, so a
// changed schema gets a new template.
func ensureTemplate(ctx context.Context, admin *pgx.Conn) (string, error) {
	sum, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "flagforge_tmpl_" + sum[:12]
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return "", err
	}
	defer func() { _, _ = admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey) }()
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	// Build under another name and rename when complete, so that a crash never
	// leaves a half-migrated template behind.
	build := name + "_build"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+build+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+build); err != nil {
		return "", err
	}
	if err := postgres.Migrate(ctx, withDatabase(ServerURL(), build)); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+build+" RENAME TO "+name); err != nil {
		return "", err
	}
	return name, nil
}

func migrationsHash() (string, error) {
	h := sha256.New()
	fsys := postgres.Migrations()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// withDatabase returns u pointing at database name.
func withDatabase(u, name string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	p.Path = "/" + name
	return p.String()
}

func redact(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable URL)"
	}
	return p.Redacted()
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
