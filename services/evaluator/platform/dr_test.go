package platform

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// TestDisasterRecoveryDrill is docs/operations.md's disaster recovery, end to end
// on real processes and a real PostgreSQL database of its own: back up with
// pg_dump, change more, destroy the database (the control plane stops with it),
// restore the dump with pg_restore, run `flagforge-controlplane
// recover-from-snapshots` to recover the changes made after the backup from the
// signed snapshots, and start the control plane again. An evaluator serves
// throughout (0 failed or wrong evaluations), the flags, configurations and
// segments of every environment equal their pre-disaster content, the evaluator
// moves forward to the version after the snapshot, and a change made after the
// recovery is served.
func TestDisasterRecoveryDrill(t *testing.T) {
	for _, tool := range []string{"pg_dump", "pg_restore", "psql"} {
		if _, err := exec.LookPath(tool); err != nil {
			unavailable(t, "%s not in PATH (scripts/ensure-services.sh installs the PostgreSQL client tools): %v", tool, err)
		}
	}
	// Checkpoints of the audit chain every 200 ms (default 1 min), so the
	// changes after the backup are checkpointed before the disaster, as they
	// would be in production over a longer time: the restore loses them.
	pl := newPlatformOn(t, false, nil, "FLAGFORGE_AUDIT_CHECKPOINT_INTERVAL=200ms")
	projectPath := "/v1/orgs/" + org + "/projects/" + project
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "dr drill", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	pl.admin("POST", projectPath+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "name": "New UI", "type": "FLAG_TYPE_BOOLEAN"}})
	pl.admin("POST", envPath+"/segments", map[string]any{"segment": map[string]any{"key": "beta", "included": []string{"u1"}}})
	e := pl.startEvaluator("evaluator", filepath.Join(pl.dir, "evaluator"))
	pl.waitValue(false, 10*time.Second, e)

	// The backup (the CronJob's command: a custom-format dump).
	dump := filepath.Join(pl.dir, "flagforge.dump")
	if out, err := exec.Command("pg_dump", "--format=custom", "--file="+dump, pl.dbURL).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}

	// Changes after the backup: a flag turned on, a flag created (on), a segment
	// changed, a segment created in another environment.
	pl.setFlag(true)
	pl.admin("POST", projectPath+"/flags", map[string]any{"flag": map[string]any{"key": "later", "type": "FLAG_TYPE_BOOLEAN"},
		"configs": map[string]any{environment: map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}}})
	beta := pl.admin("GET", envPath+"/segments/beta", nil)
	if inner, ok := beta["segment"].(map[string]any); ok {
		beta = inner
	}
	pl.admin("PUT", envPath+"/segments/beta", map[string]any{"definition": map[string]any{"key": "beta", "included": []string{"u1", "u2"}},
		"revision": beta["revision"]})
	pl.admin("POST", projectPath+"/environments/staging/segments", map[string]any{"segment": map[string]any{"key": "qa", "excluded": []string{"bot"}}})
	served := map[string]bool{"new-ui": true, "later": true}
	pl.waitFlags(e, served, 10*time.Second)
	before := pl.state()
	versionBefore := pl.heldVersion(e)
	lostThrough := pl.waitCheckpointOfHead()

	// An evaluator under load from now to the end: every answer must be right.
	var evals, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for k, want := range served {
				got, err := pl.evaluateFlag(e, k)
				evals.Add(1)
				if err != nil || got != want {
					failed.Add(1)
					firstFailure.CompareAndSwap(nil, fmt.Sprintf("%s = %v (%v), want %v", k, got, err, want))
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// The disaster: the database is lost (and the control plane with it).
	pl.cp.Stop()
	u, err := url.Parse(pl.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	dbName := strings.TrimPrefix(u.Path, "/")
	super := *u
	super.Path = "/postgres"
	psqlRun(t, super.String(), "DROP DATABASE "+dbName+" WITH (FORCE)")
	time.Sleep(500 * time.Millisecond) // the evaluator serves on alone

	// The restore.
	psqlRun(t, super.String(), "CREATE DATABASE "+dbName)
	if out, err := exec.Command("pg_restore", "--exit-on-error", "--dbname="+pl.dbURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}

	// recover-from-snapshots: a dry run, then the recovery.
	recoverCmd := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(controlPlaneBin, append([]string{"recover-from-snapshots"}, args...)...)
		cmd.Env = append(os.Environ(), pl.controlPlaneEnv()...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("recover-from-snapshots %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dry := recoverCmd("--dry-run")
	if !strings.Contains(dry, "dry run: nothing was written") || !strings.Contains(dry, "acme/web/production: would recover from snapshot version") {
		t.Fatalf("dry run printed:\n%s", dry)
	}
	report := recoverCmd()
	t.Logf("recover-from-snapshots printed:\n%s", report)
	for _, want := range []string{
		// The restore lost the audit entries after the backup, which a
		// checkpoint had recorded: the recovery signs a marker of that range.
		fmt.Sprintf("..%d are missing", lostThrough),
		fmt.Sprintf("..%d lost, the chain continues from entry", lostThrough),
		fmt.Sprintf("acme/web/production: recovered from snapshot version %d", versionBefore),
		"flags:    created 1 [later]",
		"configs:  updated 2 [later new-ui]",
		"segments: updated 1 [beta]",
		"acme/web/staging: recovered from snapshot version",
		"segments: created 1 [qa]",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if again := recoverCmd(); !strings.Contains(again, "0 recovered, 3 up to date") {
		t.Errorf("a second run is not a no-op:\n%s", again)
	}

	// The control plane comes back on the recovered database.
	pl.startControlPlane()
	deadline := time.Now().Add(15 * time.Second)
	for pl.heldVersion(e) <= versionBefore {
		if time.Now().After(deadline) {
			t.Fatalf("the evaluator still holds version %d (snapshot %d): the recovery was not published", pl.heldVersion(e), versionBefore)
		}
		time.Sleep(50 * time.Millisecond)
	}
	after := pl.state()
	if !reflect.DeepEqual(after, before) {
		a, _ := json.MarshalIndent(after, "", " ")
		b, _ := json.MarshalIndent(before, "", " ")
		t.Errorf("state after recovery:\n%s\nbefore the disaster:\n%s", a, b)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d evaluations during backup, disaster, restore and recovery; %d failed", evals.Load(), failed.Load())
	if failed.Load() > 0 || evals.Load() == 0 {
		t.Fatalf("%d of %d evaluations failed; first: %v", failed.Load(), evals.Load(), firstFailure.Load())
	}

	// The platform goes on: a change after the recovery is served.
	pl.setFlag(false)
	pl.waitValue(false, 10*time.Second, e)

	// The audit chain verifies against the checkpoints, the range the restore
	// lost excused by the signed recovery marker, the recovery entries in it.
	pl.waitCheckpointOfHead()
	verifyAudit := func() (string, error) {
		cmd := exec.Command(controlPlaneBin, "verify-audit")
		cmd.Env = append(os.Environ(), pl.controlPlaneEnv()...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verifyAudit(); err != nil || !strings.Contains(out, "acme: ok") ||
		!strings.Contains(out, fmt.Sprintf("..%d lost in a restore, recorded by the signed recovery marker", lostThrough)) {
		t.Fatalf("verify-audit after the recovery: %v\n%s", err, out)
	}
	// The marker excuses that range only: an altered marker is a finding.
	markers, _ := filepath.Glob(filepath.Join(pl.dir, "controlplane", "snapshots", org, "_audit", "recovery-*.marker"))
	if len(markers) != 1 {
		t.Fatalf("recovery markers %v, want one", markers)
	}
	signed, err := os.ReadFile(markers[0])
	if err != nil {
		t.Fatal(err)
	}
	// The payload widened by one more lost entry, the signature kept.
	var envelope map[string]any
	if err := json.Unmarshal(signed, &envelope); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(envelope["payload"].(string))
	if err != nil {
		t.Fatal(err)
	}
	var marker map[string]any
	if err := json.Unmarshal(payload, &marker); err != nil {
		t.Fatal(err)
	}
	marker["lost_through"] = marker["lost_through"].(float64) + 1
	payload, _ = json.Marshal(marker)
	envelope["payload"] = base64.StdEncoding.EncodeToString(payload)
	forged, _ := json.Marshal(envelope)
	if err := os.WriteFile(markers[0], forged, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := verifyAudit(); err == nil || !strings.Contains(out, "acme: BROKEN") || !strings.Contains(out, "recovery marker 1 of 1 does not verify") {
		t.Fatalf("verify-audit with an altered recovery marker: %v\n%s", err, out)
	}
	if err := os.WriteFile(markers[0], signed, 0o600); err != nil {
		t.Fatal(err)
	}
	audit := pl.admin("GET", "/v1/orgs/"+org+"/audit?action=environment.recover", nil)
	if entries, _ := audit["entries"].([]any); len(entries) != 3 {
		t.Fatalf("%d recovery audit entries, want one per environment: %v", len(entries), audit)
	}
}

// controlPlaneEnv is the control plane's configuration (startControlPlane's).
func (pl *platform) controlPlaneEnv() []string {
	return []string{
		"FLAGFORGE_DATABASE_URL=" + pl.dbURL,
		"FLAGFORGE_DATA_DIR=" + filepath.Join(pl.dir, "controlplane"),
		"FLAGFORGE_SIGNING_KEY=" + pl.keyPath,
		"FLAGFORGE_SYNC_TOKEN=" + pl.syncToken,
		"FLAGFORGE_LOG_LEVEL=warn",
	}
}

func psqlRun(t *testing.T, dbURL, sql string) {
	t.Helper()
	if out, err := exec.Command("psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dbURL, "-c", sql).CombinedOutput(); err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
}

// evaluateFlag asks e for a boolean flag for user-1.
func (pl *platform) evaluateFlag(e *evaluator, flag string) (bool, error) {
	code, out, err := call("POST", "http://"+e.httpAddr+"/v1/evaluate", pl.sdkKey,
		map[string]any{"flagKey": flag, "context": map[string]any{"targetingKey": "user-1"}})
	if err != nil {
		return false, err
	}
	if code != 200 || out["errorCode"] != nil && out["errorCode"] != "" {
		return false, fmt.Errorf("evaluate %s: %d %v", flag, code, out)
	}
	v, ok := out["value"].(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %s: value %v", flag, out)
	}
	return v, nil
}

// waitFlags polls e until every flag answers its value.
func (pl *platform) waitFlags(e *evaluator, want map[string]bool, timeout time.Duration) {
	pl.t.Helper()
	deadline := time.Now().Add(timeout)
	for k, v := range want {
		for {
			got, err := pl.evaluateFlag(e, k)
			if err == nil && got == v {
				break
			}
			if time.Now().After(deadline) {
				pl.t.Fatalf("%s = %v (%v), want %v after %s", k, got, err, v, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// heldVersion is the version of acme/web/production that e holds (the head its
// manifest stream starts at).
func (pl *platform) heldVersion(e *evaluator) uint64 {
	pl.t.Helper()
	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		pl.t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+pl.sdkKey), 5*time.Second)
	defer cancel()
	stream, err := evaluationv1.NewEvaluationServiceClient(conn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
	if err != nil {
		pl.t.Fatal(err)
	}
	start, err := stream.Recv()
	if err != nil {
		pl.t.Fatal(err)
	}
	return start.GetStart().GetHeadVersion()
}

// state is the content a snapshot carries, read over the admin API: the
// project's flags (key, type, variants, client visibility, archived) and each
// environment's configurations and segments (with their revisions), without
// times and the usage-derived fields.
func (pl *platform) state() map[string]any {
	pl.t.Helper()
	projectPath := "/v1/orgs/" + org + "/projects/" + project
	out := map[string]any{}
	var flags []any
	for _, f := range pl.admin("GET", projectPath+"/flags?pageSize=1000", nil)["flags"].([]any) {
		m := f.(map[string]any)
		flags = append(flags, map[string]any{"key": m["key"], "type": m["type"], "variants": m["variants"],
			"clientVisible": m["clientVisible"], "archived": m["archived"]})
	}
	out["flags"] = flags
	for _, env := range []string{"development", "staging", "production"} {
		ep := projectPath + "/environments/" + env
		var configs []any
		cs, _ := pl.admin("GET", ep+"/flags?pageSize=1000", nil)["configs"].([]any)
		for _, c := range cs {
			m := c.(map[string]any)
			configs = append(configs, map[string]any{"flag": m["flag"], "config": m["config"], "revision": m["revision"]})
		}
		out[env+"/configs"] = configs
		out[env+"/segments"] = pl.admin("GET", ep+"/segments?pageSize=1000", nil)["segments"]
	}
	return out
}

// waitCheckpointOfHead waits until the control plane has checkpointed the head of
// acme's audit chain (FLAGFORGE_AUDIT_CHECKPOINT_INTERVAL) and returns its
// sequence.
func (pl *platform) waitCheckpointOfHead() int64 {
	pl.t.Helper()
	var head int64
	for _, e := range pl.admin("GET", "/v1/orgs/"+org+"/audit?pageSize=50", nil)["entries"].([]any) {
		if seq, err := strconv.ParseInt(fmt.Sprint(e.(map[string]any)["sequence"]), 10, 64); err == nil && seq > head {
			head = seq
		}
	}
	if head == 0 {
		pl.t.Fatal("no audit entry with a sequence")
	}
	path := filepath.Join(pl.dir, "controlplane", "snapshots", org, "_audit", fmt.Sprintf("%020d.checkpoint", head))
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return head
		}
		if time.Now().After(deadline) {
			pl.t.Fatalf("no checkpoint of audit entry %d after 15s (%s)", head, path)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
