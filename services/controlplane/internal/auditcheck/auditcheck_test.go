package auditcheck_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/auditcheck"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCheckerReportsABrokenChainPerOrganization(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ff.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	meta := store.WriteMeta{ActorID: "u-1", ActorName: "alice"}
	for _, org := range []string{"acme", "globex"} {
		if _, err := st.CreateOrg(ctx, meta, &adminv1.Organization{Key: org, Name: org}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := st.CreateProject(ctx, meta, org, &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	c, err := auditcheck.New(auditcheck.Config{Interval: time.Hour}, st, reg, func() time.Time { return now },
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 0, 0, 2, 0, now)

	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = db.Close() }()
	for _, q := range []string{
		`DROP TRIGGER audit_entries_no_update`,
		`UPDATE audit_entries SET actor_name = 'mallory' WHERE org = 'globex' AND seq = 2`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	now = now.Add(time.Hour)
	if err := c.Check(ctx); err != nil {
		t.Fatal(err)
	}
	expect(t, reg, 0, 1, 3, 1, now)
}

// expect checks the broken gauges of acme and globex and the ok/broken counters.
func expect(t *testing.T, reg *prometheus.Registry, acme, globex, ok, broken float64, last time.Time) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"flagforge_audit_chain_broken,acme":                   acme,
		"flagforge_audit_chain_broken,globex":                 globex,
		"flagforge_audit_verifications_total,ok":              ok,
		"flagforge_audit_verifications_total,broken":          broken,
		"flagforge_audit_verifications_total,error":           0,
		"flagforge_audit_last_verification_timestamp_seconds": float64(last.Unix()),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if n := testutil.CollectAndCount(reg); n != len(want) {
		t.Errorf("%d series, want %d", n, len(want))
	}
}

func TestConfigRefusesANegativeInterval(t *testing.T) {
	if err := (auditcheck.Config{Interval: -time.Second}).Validate(); err == nil {
		t.Fatal("negative interval accepted")
	}
}
