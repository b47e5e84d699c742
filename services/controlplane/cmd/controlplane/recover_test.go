package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/checkpoint"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/signing"
	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

// drill is a control plane on SQLite (the fast variant of the DR drill; the
// PostgreSQL one with pg_dump and real processes is in
// services/evaluator/platform/dr_test.go).
type drill struct {
	t       *testing.T
	dir     string
	dbPath  string
	snapDir string
	signer  *manifest.Signer
	// s3, when set, is where the publisher writes snapshots (else snapDir).
	s3 *snapshot.S3
}

var (
	drillMeta = store.WriteMeta{ActorID: "admin", ActorName: "admin"}
	webRef    = store.ProjectRef{Org: "acme", Project: "web"}
	prodRef   = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
	stageRef  = store.EnvRef{Org: "acme", Project: "web", Environment: "staging"}
)

func newDrill(t *testing.T) *drill {
	t.Helper()
	dir := t.TempDir()
	d := &drill{t: t, dir: dir, dbPath: filepath.Join(dir, "flagforge.db"), snapDir: filepath.Join(dir, "snapshots")}
	signer, _, err := signing.Load(signing.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	d.signer = signer
	t.Setenv("FLAGFORGE_DATABASE_URL", "sqlite://"+d.dbPath)
	t.Setenv("FLAGFORGE_DATA_DIR", dir)
	t.Setenv("FLAGFORGE_LOG_LEVEL", "warn")
	return d
}

// open opens the store; the caller closes it.
func (d *drill) open() *sqlite.Store {
	d.t.Helper()
	st, err := sqlite.Open(context.Background(), d.dbPath)
	if err != nil {
		d.t.Fatal(err)
	}
	return st
}

// publish runs the publisher (with the snapshot directory) until every
// environment's latest version is in the snapshot directory and the outbox is
// empty, and returns the latest versions.
func (d *drill) publish(st *sqlite.Store) map[store.EnvRef]uint64 {
	d.t.Helper()
	var snaps snapshot.Store
	var err error
	if d.s3 != nil {
		snaps = d.s3
	} else if snaps, err = snapshot.NewDir(d.snapDir); err != nil {
		d.t.Fatal(err)
	}
	p, err := publisher.New(publisher.Config{PollInterval: 10 * time.Millisecond}, publisher.Deps{Store: st, Signer: d.signer, Snapshots: snaps})
	if err != nil {
		d.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		pending, err := st.PendingOutbox(ctx, 1)
		if err != nil {
			d.t.Fatal(err)
		}
		heads, err := st.ManifestHeads(ctx)
		if err != nil {
			d.t.Fatal(err)
		}
		out := map[store.EnvRef]uint64{}
		all := len(pending) == 0 && len(heads) > 0
		for _, h := range heads {
			out[h.Ref] = h.Version
			if _, err := snaps.Get(ctx, h.Ref.Org+"/"+h.Ref.Project+"/"+h.Ref.Environment, h.Version); err != nil {
				all = false
			}
		}
		if all {
			return out
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("publisher did not catch up: pending %v, heads %v", pending, heads)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// content is what evaluators are given for ref, without the version fields.
func content(t *testing.T, st store.Store, ref store.EnvRef) *manifestv1.Manifest {
	t.Helper()
	m, err := st.EnvironmentManifest(context.Background(), ref, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	manifest.Canonicalize(m)
	return m
}

func (d *drill) cmd(args ...string) (string, error) {
	d.t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), append([]string{"recover-from-snapshots"}, args...), &out, &errOut)
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func boolDef(key string) *adminv1.Flag {
	return &adminv1.Flag{Key: key, Name: "Flag " + key, Description: "kept by the backup", Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN,
		Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}}}
}

func onOff(on bool) *manifestv1.FlagConfig {
	return &manifestv1.FlagConfig{On: on, OffVariant: "off", DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}
}

// must(f())(t) is f's value, or fails t with f's error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRecoverFromSnapshotsRebuildsWhatTheBackupMissed is the DR drill on SQLite:
// back up (a copy of the closed database), change more (flags created, changed,
// archived; segments created, changed, deleted; an SDK key created and one
// revoked), lose the database, restore the copy, and recover-from-snapshots
// brings every environment back to the content it served before the disaster,
// in one audit entry per environment, with versions that only move forward.
func TestRecoverFromSnapshotsRebuildsWhatTheBackupMissed(t *testing.T) {
	d := newDrill(t)
	ctx := context.Background()
	st := d.open()
	must(st.CreateOrg(ctx, drillMeta, &adminv1.Organization{Key: "acme", Name: "Acme"}))(t)
	if _, _, err := st.CreateProject(ctx, drillMeta, "acme", &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kept", "changed", "archived-later"} {
		must(st.CreateFlag(ctx, drillMeta, webRef, boolDef(k), onOff(false), nil))(t)
	}
	must(st.CreateSegment(ctx, drillMeta, prodRef, &manifestv1.Segment{Key: "beta", Included: []string{"u1"}}, nil))(t)
	must(st.CreateSegment(ctx, drillMeta, prodRef, &manifestv1.Segment{Key: "deleted-later", Included: []string{"u9"}}, nil))(t)
	revokedLater := must(st.CreateSDKKey(ctx, drillMeta, prodRef, &adminv1.SdkKey{Name: "old", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER}, hash("old")))(t)
	backupVersions := d.publish(st)
	auditBefore := must(st.VerifyAudit(ctx, "acme"))(t).Checked
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, d.dbPath, filepath.Join(d.dir, "backup.db")) // the backup

	// After the backup.
	st = d.open()
	must(st.CreateFlag(ctx, drillMeta, webRef, boolDef("created-later"), onOff(true), nil))(t)
	fc := must(st.GetFlagConfig(ctx, prodRef, "changed"))(t)
	must(st.UpdateFlagConfig(ctx, drillMeta, prodRef, "changed", onOff(true), fc.Revision, nil))(t)
	f := must(st.GetFlag(ctx, webRef, "archived-later"))(t)
	must(st.SetFlagArchived(ctx, drillMeta, webRef, "archived-later", true, f.Revision))(t)
	sg := must(st.GetSegment(ctx, prodRef, "beta"))(t)
	sg.Included = append(sg.Included, "u2")
	must(st.UpdateSegment(ctx, drillMeta, prodRef, sg, sg.Revision, nil))(t)
	must(st.CreateSegment(ctx, drillMeta, stageRef, &manifestv1.Segment{Key: "qa", Excluded: []string{"bot"}}, nil))(t)
	del := must(st.GetSegment(ctx, prodRef, "deleted-later"))(t)
	if err := st.DeleteSegment(ctx, drillMeta, prodRef, "deleted-later", del.Revision); err != nil {
		t.Fatal(err)
	}
	newKey := must(st.CreateSDKKey(ctx, drillMeta, prodRef, &adminv1.SdkKey{Name: "new", Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT}, hash("new")))(t)
	must(st.RevokeSDKKey(ctx, drillMeta, prodRef, revokedLater.Id))(t)
	disaster := d.publish(st)
	// A signed audit checkpoint of the chain as it was before the disaster.
	cpStore, err := snapshot.NewDir(d.snapDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.NewWriter(checkpoint.Config{Interval: time.Minute}, st, cpStore, d.signer, nil, nil).WriteOnce(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[store.EnvRef]*manifestv1.Manifest{}
	for ref := range disaster {
		want[ref] = content(t, st, ref)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// The disaster: the database is lost; the backup is restored.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(d.dbPath + suffix)
	}
	copyFile(t, filepath.Join(d.dir, "backup.db"), d.dbPath)

	// A dry run reports and writes nothing.
	out, err := d.cmd("--dry-run")
	if err != nil {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	for _, line := range []string{
		"dry run: nothing was written",
		"acme/web/production: would recover from snapshot version " + itoa(disaster[prodRef]),
		"flags:    created 1 [created-later], archived 1 [archived-later]",
		"configs:  updated 2 [changed created-later]",
		"segments: updated 1 [beta], deleted 1 [deleted-later]",
		"sdk keys: created 1 [" + newKey.Id + "], revoked 1 [" + revokedLater.Id + "]",
		"acme/web/staging: would recover",
	} {
		if !strings.Contains(out, line) {
			t.Errorf("dry run report lacks %q:\n%s", line, out)
		}
	}
	st = d.open()
	if got := must(st.VerifyAudit(ctx, "acme"))(t).Checked; got != auditBefore {
		t.Fatalf("the dry run wrote %d audit entries", got-auditBefore)
	}
	if h := must(st.LatestManifest(ctx, prodRef))(t); h.Version != backupVersions[prodRef] {
		t.Fatalf("the dry run moved the version to %d", h.Version)
	}
	_ = st.Close()

	out, err = d.cmd()
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	t.Logf("recover-from-snapshots printed:\n%s", out)
	if !strings.Contains(out, "acme/web/production: recovered from snapshot version "+itoa(disaster[prodRef])+" (key "+d.signer.KeyID()+"): version "+
		itoa(backupVersions[prodRef])+" -> "+itoa(disaster[prodRef])) {
		t.Fatalf("report:\n%s", out)
	}

	st = d.open()
	defer func() { _ = st.Close() }()
	for ref, w := range want {
		if got := content(t, st, ref); !proto.Equal(got, w) {
			t.Errorf("%v after recovery:\n%v\nbefore the disaster:\n%v", ref, got, w)
		}
		if h := must(st.LatestManifest(ctx, ref))(t); h.Version != disaster[ref] {
			t.Errorf("%v: latest stored version %d, want the snapshot's %d", ref, h.Version, disaster[ref])
		}
	}
	// What the snapshot cannot carry stays as the backup had it: the flag's name.
	if f := must(st.GetFlag(ctx, webRef, "changed"))(t); f.Name != "Flag changed" {
		t.Errorf("flag name %q", f.Name)
	}
	entries, _ := must2(t)(st.ListAudit(ctx, "acme", store.AuditFilter{Action: store.RecoveryAction}, store.Page{}))
	if len(entries) != 3 {
		t.Fatalf("%d recovery audit entries, want one per environment (3)", len(entries))
	}
	if !strings.Contains(out, "acme: audit history lost in the restore: entries ") {
		t.Errorf("the report does not name the audit entries lost with the database:\n%s", out)
	}
	for _, e := range entries {
		if e.GetActorId() != "recovery" || !strings.Contains(e.GetComment(), "snapshot version") ||
			!strings.Contains(e.GetComment(), "audit history lost in the restore: entries ") {
			t.Errorf("audit entry %v", e)
		}
	}
	if v := must(st.VerifyAudit(ctx, "acme"))(t); !v.OK {
		t.Fatalf("audit chain after recovery: %s", v.Problem)
	}

	// The publisher goes on after the snapshot: a new version, never an older one.
	after := d.publish(st)
	for ref, v := range disaster {
		if after[ref] != v+1 {
			t.Errorf("%v: published version %d after recovery, want %d", ref, after[ref], v+1)
		}
	}

	// Idempotent: a second run finds everything up to date and writes nothing.
	n := len(entries)
	out, err = d.cmd()
	if err != nil || !strings.Contains(out, "acme/web/production: up to date") || !strings.Contains(out, "0 recovered, 3 up to date") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	entries, _ = must2(t)(st.ListAudit(ctx, "acme", store.AuditFilter{Action: store.RecoveryAction}, store.Page{}))
	if len(entries) != n {
		t.Fatalf("the second run wrote %d audit entries", len(entries)-n)
	}
}

func must2(t *testing.T) func([]*adminv1.AuditEntry, string, error) ([]*adminv1.AuditEntry, string) {
	return func(e []*adminv1.AuditEntry, next string, err error) ([]*adminv1.AuditEntry, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return e, next
	}
}

func hash(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestRecoverFromSnapshotsRefusesBadInput: an unknown environment, one without
// a snapshot, a snapshot signed with another key, a tampered one and one filed
// under another environment are errors naming them, and nothing is written.
func TestRecoverFromSnapshotsRefusesBadInput(t *testing.T) {
	d := newDrill(t)
	ctx := context.Background()
	st := d.open()
	must(st.CreateOrg(ctx, drillMeta, &adminv1.Organization{Key: "acme", Name: "Acme"}))(t)
	if _, _, err := st.CreateProject(ctx, drillMeta, "acme", &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	must(st.CreateFlag(ctx, drillMeta, webRef, boolDef("a"), onOff(true), nil))(t)
	versions := d.publish(st)
	auditBefore := must(st.VerifyAudit(ctx, "acme"))(t).Checked
	_ = st.Close()
	prod := filepath.Join(d.snapDir, "acme", "web", "production")
	newest := filepath.Join(prod, pad(versions[prodRef]))

	otherDir := t.TempDir()
	if _, err := d.cmdArgs("keys", "generate", "-dir", otherDir); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		setup func()
		args  []string
		want  string
	}{
		{name: "unknown environment", args: []string{"--environment", "acme/web/nope"},
			want: `environment "acme/web/nope" does not exist in the database`},
		{name: "malformed environment", args: []string{"--environment", "production"},
			want: `"production" is not org/project/environment`},
		{name: "environment without a snapshot", setup: func() {
			if err := os.RemoveAll(filepath.Join(d.snapDir, "acme", "web", "development")); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"--environment", "acme/web/development"},
			want: `environment "acme/web/development" has no manifest snapshot`},
		{name: "wrong key", args: []string{"--trusted-keys", filepath.Join(otherDir, "signing-key.pub.pem")},
			want: "manifest signed with an unknown key"},
		{name: "tampered snapshot", setup: func() {
			b, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			sm := &manifestv1.SignedManifest{}
			if err := proto.Unmarshal(b, sm); err != nil {
				t.Fatal(err)
			}
			m := &manifestv1.Manifest{}
			_ = proto.Unmarshal(sm.Payload, m)
			m.Flags[0].Config.On = !m.Flags[0].Config.On
			sm.Payload = must(manifest.Encode(m))(t)
			if err := os.WriteFile(filepath.Join(prod, pad(versions[prodRef]+1)), must(proto.Marshal(sm))(t), 0o600); err != nil {
				t.Fatal(err)
			}
		}, want: "acme/web/production: snapshot version " + itoa(versions[prodRef]+1) + " refused: manifest signature does not verify"},
		{name: "snapshot of another environment", setup: func() {
			_ = os.Remove(filepath.Join(prod, pad(versions[prodRef]+1)))
			stage := filepath.Join(d.snapDir, "acme", "web", "staging")
			copyFile(t, newest, filepath.Join(stage, pad(versions[stageRef]+5)))
		}, want: "acme/web/staging: snapshot version " + itoa(versions[stageRef]+5) + " refused: it is version " +
			itoa(versions[prodRef]) + " of acme/web/production"},
	} {
		if tc.setup != nil {
			tc.setup()
		}
		out, err := d.cmd(tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q\n%s", tc.name, err, tc.want, out)
		}
	}
	st = d.open()
	defer func() { _ = st.Close() }()
	if got := must(st.VerifyAudit(ctx, "acme"))(t).Checked; got != auditBefore {
		t.Fatalf("refused recoveries wrote %d audit entries", got-auditBefore)
	}
}

func (d *drill) cmdArgs(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	return out.String() + errOut.String(), err
}

func pad(v uint64) string { return fmt.Sprintf("%020d.manifest", v) }

// TestRecoveryFencesAPublisherStartedOnTheRestoredDatabase: a publisher that
// took its epoch on the restored database before the recovery can store
// nothing afterwards (fenced), and no publisher can store a version at or
// below the recovered snapshot's: versions never go back.
func TestRecoveryFencesAPublisherStartedOnTheRestoredDatabase(t *testing.T) {
	d := newDrill(t)
	ctx := context.Background()
	st := d.open()
	must(st.CreateOrg(ctx, drillMeta, &adminv1.Organization{Key: "acme", Name: "Acme"}))(t)
	if _, _, err := st.CreateProject(ctx, drillMeta, "acme", &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	must(st.CreateFlag(ctx, drillMeta, webRef, boolDef("a"), onOff(false), nil))(t)
	backup := d.publish(st)
	_ = st.Close()
	copyFile(t, d.dbPath, filepath.Join(d.dir, "backup.db"))
	st = d.open()
	fc := must(st.GetFlagConfig(ctx, prodRef, "a"))(t)
	must(st.UpdateFlagConfig(ctx, drillMeta, prodRef, "a", onOff(true), fc.Revision, nil))(t)
	disaster := d.publish(st)
	_ = st.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(d.dbPath + suffix)
	}
	copyFile(t, filepath.Join(d.dir, "backup.db"), d.dbPath)

	// A publisher leads on the restored database before the recovery runs.
	st = d.open()
	defer func() { _ = st.Close() }()
	early := must(st.NextPublisherEpoch(ctx))(t)
	stale := must(st.LatestManifest(ctx, prodRef))(t)
	if stale.Version != backup[prodRef] {
		t.Fatalf("restored version %d, want %d", stale.Version, backup[prodRef])
	}
	if out, err := d.cmd("--environment", "acme/web/production"); err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	next := &store.StoredManifest{Ref: prodRef, Version: stale.Version + 1, Signed: stale.Signed, Digest: stale.Digest,
		IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := st.CommitManifests(ctx, early, []*store.StoredManifest{next}, nil, 0); errs.KindOf(err) != errs.FailedPrecondition {
		t.Fatalf("the early publisher stored version %d after the recovery: %v, want fenced off (FailedPrecondition)", next.Version, err)
	}
	now := must(st.NextPublisherEpoch(ctx))(t)
	if err := st.CommitManifests(ctx, now, []*store.StoredManifest{next}, nil, 0); errs.KindOf(err) != errs.Aborted {
		t.Fatalf("version %d stored below the recovered snapshot %d: %v, want Aborted", next.Version, disaster[prodRef], err)
	}
	if h := must(st.LatestManifest(ctx, prodRef))(t); h.Version != disaster[prodRef] {
		t.Fatalf("latest version %d, want the snapshot's %d", h.Version, disaster[prodRef])
	}
}

// TestRecoverFromS3Snapshots: the same recovery from an S3-compatible bucket
// (gofakes3 over HTTP), configured as serve is (FLAGFORGE_SNAPSHOT_S3_*).
func TestRecoverFromS3Snapshots(t *testing.T) {
	d := newDrill(t)
	backend := s3mem.New()
	if err := backend.CreateBucket("snapshots"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	cfg := snapshot.S3Config{Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: "snapshots", Prefix: "ff/",
		Region: "us-east-1", AccessKey: "test-access", SecretKey: "test-secret", Insecure: true}
	for k, v := range map[string]string{"ENDPOINT": cfg.Endpoint, "BUCKET": cfg.Bucket, "PREFIX": cfg.Prefix, "REGION": cfg.Region,
		"ACCESS_KEY": cfg.AccessKey, "SECRET_KEY": cfg.SecretKey, "INSECURE": "true"} {
		t.Setenv("FLAGFORGE_SNAPSHOT_S3_"+k, v)
	}
	d.s3 = must(snapshot.NewS3(cfg))(t)
	ctx := context.Background()
	st := d.open()
	must(st.CreateOrg(ctx, drillMeta, &adminv1.Organization{Key: "acme", Name: "Acme"}))(t)
	if _, _, err := st.CreateProject(ctx, drillMeta, "acme", &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	must(st.CreateFlag(ctx, drillMeta, webRef, boolDef("a"), onOff(false), nil))(t)
	d.publish(st)
	_ = st.Close()
	copyFile(t, d.dbPath, filepath.Join(d.dir, "backup.db"))
	st = d.open()
	fc := must(st.GetFlagConfig(ctx, prodRef, "a"))(t)
	must(st.UpdateFlagConfig(ctx, drillMeta, prodRef, "a", onOff(true), fc.Revision, nil))(t)
	must(st.CreateSegment(ctx, drillMeta, prodRef, &manifestv1.Segment{Key: "beta", Included: []string{"u1"}}, nil))(t)
	disaster := d.publish(st)
	want := content(t, st, prodRef)
	_ = st.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		_ = os.Remove(d.dbPath + suffix)
	}
	copyFile(t, filepath.Join(d.dir, "backup.db"), d.dbPath)

	out, err := d.cmd()
	if err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if !strings.Contains(out, "acme/web/production: recovered from snapshot version "+itoa(disaster[prodRef])) ||
		!strings.Contains(out, "segments: created 1 [beta]") {
		t.Fatalf("report:\n%s", out)
	}
	st = d.open()
	defer func() { _ = st.Close() }()
	if got := content(t, st, prodRef); !proto.Equal(got, want) {
		t.Fatalf("after recovery:\n%v\nbefore the disaster:\n%v", got, want)
	}
}
