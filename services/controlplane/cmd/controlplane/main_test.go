package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// TestBootstrapThenVerifyAudit runs the subcommands as a user would: bootstrap
// prints an owner token; verify-audit passes, then reports the first broken link
// (exit status 1) once someone edits history behind the triggers' back.
func TestBootstrapThenVerifyAudit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flagforge.db")
	t.Setenv("FLAGFORGE_DATABASE_URL", "sqlite://"+path)
	t.Setenv("FLAGFORGE_LOG_LEVEL", "warn")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"migrate"}, &out, &errOut); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errOut.String())
	}
	if err := run(ctx, []string{"bootstrap", "--org", "acme", "--email", "admin@acme.test"}, &out, &errOut); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, errOut.String())
	}
	if tok := strings.TrimSpace(out.String()); !strings.HasPrefix(tok, "ffat_") || strings.Contains(tok, "\n") {
		t.Fatalf("bootstrap printed %q", out.String())
	}
	if err := run(ctx, []string{"bootstrap", "--org", "acme"}, &out, &errOut); err == nil {
		t.Fatal("bootstrap without --email accepted")
	}
	out.Reset()
	if err := run(ctx, []string{"verify-audit"}, &out, &errOut); err != nil {
		t.Fatalf("verify-audit: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "acme: ok (") {
		t.Fatalf("verify-audit printed %q", out.String())
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, q := range []string{
		`DROP TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET actor_name = 'mallory' WHERE org = 'acme' AND seq = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out.Reset()
	err = run(ctx, []string{"verify-audit"}, &out, &errOut)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("verify-audit on a broken chain: %v", err)
	}
	if !strings.Contains(out.String(), "acme: BROKEN at entry 2") {
		t.Fatalf("verify-audit printed %q", out.String())
	}
}

func TestUnknownCommand(t *testing.T) {
	if err := run(context.Background(), []string{"frobnicate"}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("unknown command accepted")
	}
}

// TestKeysGenerateThenPublic: `keys public` derives exactly the public key that
// `keys generate` wrote next to the private key.
func TestKeysGenerateThenPublic(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"keys", "generate", "-dir", dir}, &out, &errOut); err != nil {
		t.Fatalf("generate: %v %s", err, errOut.String())
	}
	if err := run(ctx, []string{"keys", "generate", "-dir", dir}, &out, &errOut); err == nil {
		t.Fatal("generate overwrote an existing key")
	}
	out.Reset()
	if err := run(ctx, []string{"keys", "public", filepath.Join(dir, "signing-key.pem")}, &out, &errOut); err != nil {
		t.Fatalf("public: %v %s", err, errOut.String())
	}
	want, err := os.ReadFile(filepath.Join(dir, "signing-key.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Fatalf("keys public printed\n%s\nwant\n%s", out.String(), want)
	}
	if err := run(ctx, []string{"keys", "frobnicate"}, &out, &errOut); err == nil {
		t.Fatal("unknown keys command accepted")
	}
}

// TestVerifyAuditComparesWithTheSignedCheckpoints: with a checkpoint of the chain
// head in the snapshot directory, deleting the newest entries (triggers dropped,
// as a superuser could) makes verify-audit exit 1 naming the missing range.
func TestVerifyAuditComparesWithTheSignedCheckpoints(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flagforge.db")
	t.Setenv("FLAGFORGE_DATABASE_URL", "sqlite://"+path)
	t.Setenv("FLAGFORGE_DATA_DIR", dir)
	t.Setenv("FLAGFORGE_LOG_LEVEL", "warn")
	ctx := context.Background()
	var out, errOut bytes.Buffer
	for _, args := range [][]string{{"migrate"}, {"bootstrap", "--org", "acme", "--email", "admin@acme.test"}} {
		if err := run(ctx, args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, errOut.String())
		}
	}
	// What `serve` does every FLAGFORGE_AUDIT_CHECKPOINT_INTERVAL.
	signer, _, err := signing.Load(signing.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := snapshot.NewDir(filepath.Join(dir, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.NewWriter(checkpoint.Config{Interval: time.Minute}, st, snaps, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil).WriteOnce(ctx); err != nil {
		t.Fatal(err)
	}
	head, _, err := st.AuditHead(ctx, "acme")
	if err != nil || head < 2 {
		t.Fatalf("head %d %v", head, err)
	}
	_ = st.Close()
	out.Reset()
	if err := run(ctx, []string{"verify-audit"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "matches the signed checkpoint") {
		t.Fatalf("untouched: %v %q", err, out.String())
	}

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, q := range []string{`DROP TRIGGER audit_entries_no_delete`, `DELETE FROM audit_entries WHERE org = 'acme' AND seq > 1`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	out.Reset()
	err = run(ctx, []string{"verify-audit"}, &out, &errOut)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("verify-audit after deleting the tail: %v %q", err, out.String())
	}
	if want := fmt.Sprintf("acme: BROKEN against the signed checkpoints: entries 2..%d are missing", head); !strings.Contains(out.String(), want) {
		t.Fatalf("verify-audit printed %q, want %q", out.String(), want)
	}
}
