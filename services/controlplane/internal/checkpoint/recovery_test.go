package checkpoint_test

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
)

// restored is a fixture whose database was "restored" to entry first+1 (the
// entries after it deleted by the superuser, as a restore of an older backup
// loses them), then marked as recovered with the fixture's key.
func restored(t *testing.T) (*fixture, *manifest.Signer, checkpoint.Recovery) {
	t.Helper()
	f := newFixture(t)
	signer := f.signer
	f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, f.first+1))
	if r := f.verify(t); r.OK || !strings.Contains(r.Problem, fmt.Sprintf("entries %d..%d are missing", f.first+2, f.head)) {
		t.Fatalf("before the marker: %+v, want the lost range reported", r)
	}
	m, ok, err := checkpoint.MarkRecovery(t.Context(), f.st, f.dir, signer, f.verifier, "acme", time.Now())
	if err != nil || !ok {
		t.Fatalf("MarkRecovery: %+v %v %v", m, ok, err)
	}
	if m.RestoredTo != f.first+1 || m.LostThrough != f.head {
		t.Fatalf("marker %+v, want restored to %d, lost through %d", m, f.first+1, f.head)
	}
	return f, signer, m
}

func TestASignedRecoveryMarkerExcusesTheRangeARestoreLost(t *testing.T) {
	t.Parallel()
	f, signer, m := restored(t)
	r := f.verify(t)
	if !r.OK || len(r.Recovered) != 1 || r.Recovered[0] != m {
		t.Fatalf("after the marker: %+v, want ok with the marker", r)
	}
	// The chain goes on past the lost range and is checkpointed again (the new
	// checkpoints replace the lost chain's at the same sequences): still ok.
	write(t, f.st, int(f.head-f.first)+2)
	w := checkpoint.NewWriter(checkpoint.Config{Interval: time.Minute}, f.st, f.dir, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err := w.WriteOnce(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := f.verify(t); !r.OK {
		t.Fatalf("after the chain went on: %+v", r)
	}
	// Running the recovery again marks nothing more.
	if _, ok, err := checkpoint.MarkRecovery(t.Context(), f.st, f.dir, signer, f.verifier, "acme", time.Now()); ok || err != nil {
		t.Fatalf("a second MarkRecovery: %v %v, want nothing written", ok, err)
	}
}

func TestTamperingIsFoundDespiteARecoveryMarker(t *testing.T) {
	t.Parallel()
	t.Run("entries deleted after the recovery", func(t *testing.T) {
		t.Parallel()
		f, signer, m := restored(t)
		write(t, f.st, 3)
		w := checkpoint.NewWriter(checkpoint.Config{Interval: time.Minute}, f.st, f.dir, signer, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err := w.WriteOnce(t.Context()); err != nil {
			t.Fatal(err)
		}
		f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, m.RestoredTo+1))
		if r := f.verify(t); r.OK || !strings.Contains(r.Problem, "are missing") {
			t.Fatalf("tail deleted after the recovery: %+v, want it found", r)
		}
	})
	t.Run("the restored entries rewritten", func(t *testing.T) {
		t.Parallel()
		f, _, _ := restored(t)
		// The whole chain recomputed from entry 1: the marker's restored entry no
		// longer has its hash, so the marker does not apply.
		f.asSuperuser(t, `DELETE FROM audit_entries WHERE org = 'acme'`)
		write(t, f.st, int(f.head)+2)
		if r := f.verify(t); r.OK || !strings.Contains(r.Problem, "rewritten") {
			t.Fatalf("chain recomputed after the recovery: %+v, want it found", r)
		}
	})
	t.Run("a marker signed with another key", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		other, _ := keys(t)
		f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, f.first))
		data, err := checkpoint.SealRecovery(other, checkpoint.Recovery{Org: "acme", RestoredTo: 0, LostThrough: f.head, Time: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		if err := f.dir.PutRecoveryMarker(t.Context(), "acme", time.Now(), data); err != nil {
			t.Fatal(err)
		}
		if r := f.verify(t); r.OK || !strings.Contains(r.Problem, "recovery marker 1 of 1 does not verify") {
			t.Fatalf("forged marker: %+v", r)
		}
	})
	t.Run("a marker does not excuse a rewrite", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		signer := f.signer
		f.asSuperuser(t, fmt.Sprintf(`DELETE FROM audit_entries WHERE org = 'acme' AND seq > %d`, f.first))
		write(t, f.st, 4) // past the checkpointed head: a rewrite, not a lost tail
		m, ok, err := checkpoint.MarkRecovery(t.Context(), f.st, f.dir, signer, f.verifier, "acme", time.Now())
		if ok || err != nil {
			t.Fatalf("MarkRecovery on a rewritten chain: %+v %v %v, want nothing written", m, ok, err)
		}
		if r := f.verify(t); r.OK || !strings.Contains(r.Problem, "rewritten") {
			t.Fatalf("rewritten chain: %+v", r)
		}
	})
}
