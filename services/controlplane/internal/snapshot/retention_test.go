package snapshot_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

// day0 is the start of the UTC day the retention tests run "now" in.
var day0 = time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)

// history is 40 versions of one environment written over 10 days, 4 a day at
// 01:00, 07:00, 13:00 and 19:00 (versions 1-4 on day0-9, ..., 37-40 on day0).
func history() []snapshot.Entry {
	var out []snapshot.Entry
	v := uint64(1)
	for d := 9; d >= 0; d-- {
		for h := 1; h < 24; h += 6 {
			out = append(out, snapshot.Entry{Version: v, Written: day0.AddDate(0, 0, -d).Add(time.Duration(h) * time.Hour)})
			v++
		}
	}
	return out
}

func versions(from, to uint64, except ...uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		if !slices.Contains(except, v) {
			out = append(out, v)
		}
	}
	return out
}

func TestRetentionKeepsTheLastVersionsAndTheNewestOfEachDay(t *testing.T) {
	t.Parallel()
	now := day0.Add(20 * time.Hour)
	for _, c := range []struct {
		name string
		r    snapshot.Retention
		want []uint64 // expired
	}{
		// The last 6 (35-40) and the newest of today, day-1 and day-2 (40, 36, 32).
		{"keep 6, 3 days", snapshot.Retention{Keep: 6, Days: 3}, versions(1, 34, 32)},
		// Days only count back from today: 10 days cover every day of the history.
		{"keep 1, 10 days", snapshot.Retention{Keep: 1, Days: 10}, versions(1, 39, 4, 8, 12, 16, 20, 24, 28, 32, 36)},
		{"keep 2, no days", snapshot.Retention{Keep: 2}, versions(1, 38)},
		{"keep more than there is", snapshot.Retention{Keep: 100, Days: 1}, nil},
	} {
		if got := c.r.Expired(history(), now); !slices.Equal(got, c.want) {
			t.Errorf("%s: expired %v, want %v", c.name, got, c.want)
		}
	}
	if err := (snapshot.Retention{Keep: 0, Days: 3}).Validate(); err == nil {
		t.Error("a retention that keeps no version was accepted")
	}
	if err := (snapshot.Retention{Keep: 1, Days: -1}).Validate(); err == nil {
		t.Error("negative days accepted")
	}
}

// putHistory writes history() to acme/web/production and 8 versions written
// 30 days ago to acme/web/staging; setTime stamps each with its time.
func putHistory(t *testing.T, s snapshot.Store, setTime func(target string, e snapshot.Entry)) {
	t.Helper()
	for _, e := range history() {
		if err := s.Put(t.Context(), "acme/web/production", e.Version, fmt.Appendf(nil, "v%d", e.Version)); err != nil {
			t.Fatal(err)
		}
		setTime("acme/web/production", e)
	}
	for v := uint64(1); v <= 8; v++ {
		e := snapshot.Entry{Version: v, Written: day0.AddDate(0, 0, -30)}
		if err := s.Put(t.Context(), "acme/web/staging", v, []byte("s")); err != nil {
			t.Fatal(err)
		}
		setTime("acme/web/staging", e)
	}
}

type prunable interface {
	snapshot.Store
	snapshot.Pruner
	snapshot.Lister
	PutCheckpoint(ctx context.Context, org string, seq int64, data []byte) error
	Checkpoints(ctx context.Context, org string) ([]int64, error)
}

// checkPruned prunes with keep 6 / 3 days and checks what is left: the
// retained versions of production, the last 6 of staging (whatever their age),
// the audit checkpoints; recovery's starting points (Newest) are unchanged; a
// second run deletes nothing.
func checkPruned(t *testing.T, s prunable) {
	t.Helper()
	if err := s.PutCheckpoint(t.Context(), "acme", 7, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	now := day0.Add(20 * time.Hour)
	n, err := snapshot.Prune(t.Context(), s, snapshot.Retention{Keep: 6, Days: 3}, now)
	if err != nil {
		t.Fatal(err)
	}
	if n != 33+2 {
		t.Fatalf("pruned %d snapshots, want 35 (33 of production, 2 of staging)", n)
	}
	entries, err := s.Entries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var prod, staging []uint64
	for _, e := range entries["acme/web/production"] {
		prod = append(prod, e.Version)
	}
	for _, e := range entries["acme/web/staging"] {
		staging = append(staging, e.Version)
	}
	slices.Sort(prod)
	if want := []uint64{32, 35, 36, 37, 38, 39, 40}; !slices.Equal(prod, want) {
		t.Fatalf("production keeps %v, want %v", prod, want)
	}
	slices.Sort(staging)
	if want := versions(3, 8); !slices.Equal(staging, want) {
		t.Fatalf("staging keeps %v, want %v (the last 6, however old)", staging, want)
	}
	for _, v := range []uint64{32, 40} {
		if b, err := s.Get(t.Context(), "acme/web/production", v); err != nil || string(b) != fmt.Sprintf("v%d", v) {
			t.Fatalf("version %d after pruning: %q %v", v, b, err)
		}
	}
	if _, err := s.Get(t.Context(), "acme/web/production", 31); err == nil {
		t.Fatal("version 31 is still readable")
	}
	newest, err := s.Newest(t.Context())
	if err != nil || newest["acme/web/production"] != 40 || newest["acme/web/staging"] != 8 {
		t.Fatalf("Newest after pruning: %v %v", newest, err)
	}
	if cps, err := s.Checkpoints(t.Context(), "acme"); err != nil || !slices.Equal(cps, []int64{7}) {
		t.Fatalf("audit checkpoints after pruning: %v %v", cps, err)
	}
	if n, err := snapshot.Prune(t.Context(), s, snapshot.Retention{Keep: 6, Days: 3}, now); err != nil || n != 0 {
		t.Fatalf("second prune: %d %v, want 0", n, err)
	}
}

func TestDirPruneAppliesTheRetention(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, err := snapshot.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	putHistory(t, d, func(target string, e snapshot.Entry) {
		name, _ := snapshot.Name(target, e.Version)
		if err := os.Chtimes(filepath.Join(root, filepath.FromSlash(name)), e.Written, e.Written); err != nil {
			t.Fatal(err)
		}
	})
	// Temporary files and unrelated files are not snapshots: left alone.
	stray := filepath.Join(root, "acme", "web", "production", ".tmp-1")
	if err := os.WriteFile(stray, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	checkPruned(t, d)
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("a file that is not a snapshot was touched: %v", err)
	}
}

// TestS3PruneAppliesTheRetention runs against gofakes3 (the S3 HTTP API, as
// s3_test.go does); the backend's clock stamps each object's LastModified.
func TestS3PruneAppliesTheRetention(t *testing.T) {
	t.Parallel()
	clock := gofakes3.FixedTimeSource(day0)
	backend := s3mem.New(s3mem.WithTimeSource(clock))
	if err := backend.CreateBucket("snapshots"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	s, err := snapshot.NewS3(snapshot.S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "snapshots", Prefix: "ff/",
		Region: "us-east-1", AccessKey: "test-access", SecretKey: "test-secret", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	// Put stamps the object with the clock's time: set it before each Put by
	// writing through a store whose Put advances the clock first.
	putHistory(t, clockedS3{S3: s, clock: clock}, func(string, snapshot.Entry) {})
	// An object outside the prefix is someone else's: left alone.
	if _, err := backend.PutObject("snapshots", "other/acme/web/production/00000000000000000001.manifest", nil,
		strings.NewReader("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	checkPruned(t, s)
	if _, err := backend.HeadObject("snapshots", "other/acme/web/production/00000000000000000001.manifest"); err != nil {
		t.Fatalf("an object outside the prefix was deleted: %v", err)
	}
}

// clockedS3 sets the fake server's clock to the version's time in history()
// (staging: 30 days ago) before each Put.
type clockedS3 struct {
	*snapshot.S3
	clock gofakes3.TimeSourceAdvancer
}

func (c clockedS3) Put(ctx context.Context, target string, version uint64, data []byte) error {
	at := day0.AddDate(0, 0, -30)
	if target == "acme/web/production" {
		at = history()[version-1].Written
	}
	c.clock.Advance(at.Sub(c.clock.Now()))
	return c.S3.Put(ctx, target, version, data)
}
