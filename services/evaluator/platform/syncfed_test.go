package platform

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// startSyncEvaluator starts an evaluator that follows the control plane's sync
// stream (the `make run` default: no Redis), or, with no control plane address,
// serves its local copies only.
func (pl *platform) startSyncEvaluator(name, dataDir, syncAddr string) *evaluator {
	pl.t.Helper()
	e := &evaluator{dataDir: dataDir, httpAddr: freeAddr(pl.t), grpcAddr: freeAddr(pl.t)}
	e.p = start(pl.t, name, evaluatorBin, []string{
		"FLAGFORGE_SYNC_ADDR=" + syncAddr,
		"FLAGFORGE_SYNC_TOKEN=" + pl.syncToken,
		"FLAGFORGE_TRUSTED_KEYS=" + pl.pubPath,
		"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
		"FLAGFORGE_DATA_DIR=" + dataDir,
		"FLAGFORGE_GRPC_ADDR=" + e.grpcAddr,
		"FLAGFORGE_HTTP_ADDR=" + e.httpAddr,
		"FLAGFORGE_ADMIN_ADDR=",
		"FLAGFORGE_RATE_LIMIT=0",
		"FLAGFORGE_LOG_LEVEL=warn",
	})
	e.p.waitReady("http://"+e.httpAddr+"/readyz", 30*time.Second)
	return e
}

// servedVersion is the manifestVersion /v1/evaluate answers with, as a string.
func (pl *platform) servedVersion(e *evaluator) (string, map[string]any) {
	pl.t.Helper()
	code, out, err := call("POST", "http://"+e.httpAddr+"/v1/evaluate", pl.sdkKey,
		map[string]any{"flagKey": "new-ui", "context": map[string]any{"targetingKey": "user-1"}})
	if err != nil || code != http.StatusOK {
		pl.t.Fatalf("evaluate: %d %v %v", code, out, err)
	}
	v, _ := out["manifestVersion"].(string)
	return v, out
}

// polledVersion is the signed manifest GET /v1/manifest answers: its verified
// version and the ETag.
func (pl *platform) polledVersion(e *evaluator) (uint64, string) {
	pl.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+e.httpAddr+"/v1/manifest", nil)
	req.Header.Set("Authorization", "Bearer "+pl.sdkKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		pl.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		pl.t.Fatalf("GET /v1/manifest: %d %s", resp.StatusCode, b)
	}
	var sm manifestv1.SignedManifest
	if err := proto.Unmarshal(b, &sm); err != nil {
		pl.t.Fatal(err)
	}
	m, err := pl.verifier.Manifest(&sm)
	if err != nil {
		pl.t.Fatal(err)
	}
	return m.GetVersion(), resp.Header.Get("ETag")
}

// Issue 12, finding 1, against real processes: an evaluator on the control plane's
// sync stream applies changes as deltas, and GET /v1/manifest, its ETag and the
// local copy follow every version it serves; restarted with no control plane, it
// serves exactly the last version served.
func TestSyncFedEvaluatorServesAndKeepsTheSignedManifestOfEveryVersion(t *testing.T) {
	pl := newPlatform(t, false)
	pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
	key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "sync test", "kind": "SDK_KEY_KIND_SERVER"})
	pl.sdkKey, _ = key["secret"].(string)
	dir := filepath.Join(pl.dir, "evaluator-sync")
	e := pl.startSyncEvaluator("sync evaluator", dir, pl.cpGRPC)
	pl.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}})

	for i, on := range []bool{true, false, true, false, true} {
		pl.setFlag(on)
		pl.waitValue(on, 5*time.Second, e)
		served, _ := pl.servedVersion(e)
		polled, etag := pl.polledVersion(e)
		if served == "" || served != strconv.FormatUint(polled, 10) || !strings.Contains(etag, "-"+served+"-") {
			t.Fatalf("change %d: /v1/evaluate serves version %s, GET /v1/manifest returns %d (ETag %s)", i+1, served, polled, etag)
		}
		b, err := os.ReadFile(filepath.Join(dir, org, project, environment+".manifest"))
		if err != nil {
			t.Fatal(err)
		}
		var disk manifestv1.SignedManifest
		if err := proto.Unmarshal(b, &disk); err != nil {
			t.Fatal(err)
		}
		m, err := pl.verifier.Manifest(&disk)
		if err != nil || strconv.FormatUint(m.GetVersion(), 10) != served {
			t.Fatalf("change %d: the local copy is version %d (%v) while %s is served", i+1, m.GetVersion(), err, served)
		}
	}
	// Long-poll with the current ETag; the next change answers 200 at once.
	_, etag := pl.polledVersion(e)
	got := make(chan int, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.httpAddr+"/v1/manifest?wait=10s", nil)
		req.Header.Set("Authorization", "Bearer "+pl.sdkKey)
		req.Header.Set("If-None-Match", etag)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- 0
			return
		}
		_ = resp.Body.Close()
		got <- resp.StatusCode
	}()
	time.Sleep(300 * time.Millisecond)
	began := time.Now()
	pl.setFlag(false)
	if code := <-got; code != http.StatusOK || time.Since(began) > 5*time.Second {
		t.Fatalf("long-poll answered %d after %s, want 200 at the change", code, time.Since(began))
	}
	pl.waitValue(false, 5*time.Second, e)
	lastVersion, before := pl.servedVersion(e)

	// No control plane, a restart from the local copy alone.
	e.p.Stop()
	pl.cp.Stop()
	e2 := pl.startSyncEvaluator("evaluator from disk", dir, "")
	v, after := pl.servedVersion(e2)
	if v != lastVersion || after["value"] != before["value"] || after["reason"] != before["reason"] {
		t.Fatalf("restarted from disk: %v, want the last version served %v", after, before)
	}
}
