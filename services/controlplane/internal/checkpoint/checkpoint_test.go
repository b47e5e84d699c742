package checkpoint_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

var meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com"}

// The snapshot stores keep the checkpoints (the application finds them by a type
// assertion, so a missing method would silently turn checkpoints off).
var (
	_ checkpoint.Storage = (*snapshot.Dir)(nil)
	_ checkpoint.Storage = (*snapshot.S3)(nil)
)

// fixture is a PostgreSQL store (as the application's login role) with an
// organization whose chain was checkpointed twice, and the superuser URL of its
// database.
type fixture struct {
	st       *postgres.Store
	dir      *snapshot.Dir
	signer   *manifest.Signer
	verifier *manifest.Verifier
	superURL string
	head     int64 // the newest checkpointed entry
	first    int64 // the older checkpoint
}

func keys(t *testing.T) (*manifest.Signer, *manifest.Verifier) {
	t.Helper()
	privPEM, _, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := manifest.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.NewVerifier(time.Now, s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// write appends n audit entries to acme's chain (project creations).
func write(t *testing.T, st store.Store, n int) {
	t.Helper()
	for range n {
		key := fmt.Sprintf("p%d", time.Now().UnixNano())
		if _, _, err := st.CreateProject(t.Context(), meta, "acme", &adminv1.Project{Key: key}); err != nil {
			t.Fatal(err)
		}
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	url := testpg.New(t)
	st, err := postgres.Open(t.Context(), testpg.AppURL(t, url))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := st.CreateOrg(t.Context(), meta, &adminv1.Organization{Key: "acme"}); err != nil {
		t.Fatal(err)
	}
	dir, err := snapshot.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier := keys(t)
	w := checkpoint.NewWriter(checkpoint.Config{Interval: time.Minute}, st, dir, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	f := &fixture{st: st, dir: dir, signer: signer, verifier: verifier, superURL: url}
	write(t, st, 3)
	if err := w.WriteOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.first, _, _ = st.AuditHead(t.Context(), "acme")
	write(t, st, 3)
	if err := w.WriteOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	f.head, _, _ = st.AuditHead(t.Context(), "acme")
	seqs, err := dir.Checkpoints(t.Context(), "acme")
	if err != nil || len(seqs) != 2 || seqs[0] != f.first || seqs[1] != f.head {
		t.Fatalf("checkpoints %v %v, want [%d %d]", seqs, err, f.first, f.head)
	}
	return f
}

// asSuperuser runs statements with the audit triggers disabled, as a database
// superuser can.
func (f *fixture) asSuperuser(t *testing.T, stmts ...string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), f.superURL)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close(context.Background()) }()
	tx, err := c.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SET LOCAL session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	for _, s := range stmts {
		if _, err := tx.Exec(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) verify(t *testing.T) checkpoint.Result {
	t.Helper()
	v, err := f.st.VerifyAudit(t.Context(), "acme")
	if err != nil || !v.OK {
		t.Fatalf("the chain verifies on its own (the tampering is not visible inside the database): %+v %v", v, err)
	}
	r, err := checkpoint.Verify(t.Context(), f.st, f.dir, f.verifier, "acme")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestUntouchedDatabaseMatchesItsCheckpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	write(t, f.st, 2) // entries after the newest checkpoint are fine
	r := f.verify(t)
	if !r.OK || r.Checkpoints != 2 || r.Newest.Sequence != f.head {
		t.Fatalf("untouched: %+v", r)
	}
}

func TestTailDeletedBySuperuserIsDetected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, f.head-2))
	r := f.verify(t)
	want := fmt.Sprintf("entries %d..%d are missing", f.head-1, f.head)
	if r.OK || !strings.Contains(r.Problem, want) {
		t.Fatalf("tail deletion: %+v, want a problem naming %q", r, want)
	}
}

func TestChainRecomputedEndToEndIsDetected(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The superuser wipes the chain and lets the application write a new one from
	// entry 1: every hash is recomputed, the chain verifies, and it is longer than
	// the checkpointed head.
	f.asSuperuser(t, `DELETE FROM audit_entries WHERE org = 'acme'`)
	write(t, f.st, int(f.head)+2)
	r := f.verify(t)
	want := fmt.Sprintf("entries 1..%d were rewritten", f.head)
	if r.OK || !strings.Contains(r.Problem, want) {
		t.Fatalf("recomputed chain: %+v, want a problem naming %q", r, want)
	}
}

func TestRewrittenSuffixNamesTheRangeAfterTheLastMatchingCheckpoint(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, f.first))
	write(t, f.st, 4)
	r := f.verify(t)
	want := fmt.Sprintf("entries %d..%d were rewritten", f.first+1, f.head)
	if r.OK || !strings.Contains(r.Problem, want) {
		t.Fatalf("rewritten suffix: %+v, want %q", r, want)
	}
}

func TestForgedCheckpointIsAFinding(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	other, _ := keys(t)
	data, err := checkpoint.Seal(other, checkpoint.Head{Org: "acme", Sequence: 2, Hash: "00", Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.dir.PutCheckpoint(t.Context(), "acme", 9, data); err != nil {
		t.Fatal(err)
	}
	r := f.verify(t)
	if r.OK || !strings.Contains(r.Problem, "does not verify") {
		t.Fatalf("forged checkpoint: %+v", r)
	}
}
