package platform

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The guardrail tests' timing: the control plane evaluates a running plan's
// guardrails every checkInterval and looks for due work every pollInterval;
// Prometheus scrapes the test's target every second.
const (
	checkInterval = time.Second
	pollInterval  = 200 * time.Millisecond
)

// appMetrics is the application under release: a scrape target whose error
// counter the test raises.
type appMetrics struct {
	errors atomic.Int64
	srv    *httptest.Server
}

func newAppMetrics(t *testing.T) *appMetrics {
	t.Helper()
	m := &appMetrics{}
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = fmt.Fprintf(w, "# TYPE checkout_errors_total counter\ncheckout_errors_total{variant=\"on\"} %d\n", m.errors.Load())
	}))
	t.Cleanup(m.srv.Close)
	return m
}

// prometheusServer is a real Prometheus (Debian package) of the test's own, on a
// free port, scraping target every second.
type prometheusServer struct {
	p   *proc
	url string
}

func startPrometheus(t *testing.T, target string) *prometheusServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		unavailable(t, "no prometheus binary (scripts/ensure-prometheus.sh installs it)")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: checkout
    static_configs:
      - targets: ["`+target+`"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	s := &prometheusServer{url: "http://" + addr}
	s.p = start(t, "prometheus", bin, nil, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	s.p.waitReady(s.url+"/-/ready", 60*time.Second)
	return s
}

// query runs an instant query and returns the first sample's value (0: empty).
func (s *prometheusServer) query(q string) (float64, error) {
	code, out, err := call("GET", s.url+"/api/v1/query?query="+url.QueryEscape(q), "", nil)
	if err != nil || code != http.StatusOK {
		return 0, fmt.Errorf("query: %d %v: %w", code, out, err)
	}
	data, _ := out["data"].(map[string]any)
	res, _ := data["result"].([]any)
	if len(res) == 0 {
		return 0, nil
	}
	v, _ := res[0].(map[string]any)["value"].([]any)
	if len(v) != 2 {
		return 0, fmt.Errorf("query: %v", out)
	}
	s2, _ := v[1].(string)
	return strconv.ParseFloat(s2, 64)
}

const errorsQuery = `sum(increase(checkout_errors_total{variant="on"}[$window]))`

// newReleasePlatform starts the embedded platform with the control plane pointed
// at prom, and creates boolean flag "checkout", off.
func newReleasePlatform(t *testing.T, promURL string) *embedded {
	t.Helper()
	em := newEmbedded(t, "FLAGFORGE_PROMETHEUS_URL="+promURL,
		"FLAGFORGE_RELEASE_CHECK_INTERVAL="+checkInterval.String(), "FLAGFORGE_RELEASE_POLL_INTERVAL="+pollInterval.String())
	em.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{"key": "checkout", "type": "FLAG_TYPE_BOOLEAN"}})
	return em
}

// createPlan creates and starts a plan of checkout with the errors guardrail.
func (em *embedded) createPlan(steps []any) string {
	em.t.Helper()
	out := em.admin("POST", envPath+"/release-plans", map[string]any{"flag": "checkout", "steps": steps,
		"guardrails": []any{map[string]any{"name": "checkout-errors", "promql": map[string]any{"query": errorsQuery},
			"threshold": 5, "window": "10s"}}, "description": "new checkout"})
	id, _ := out["releasePlan"].(map[string]any)["id"].(string)
	em.admin("POST", envPath+"/release-plans/"+id+":start", map[string]any{"comment": "go"})
	return id
}

// waitPlan polls the plan until ok accepts it.
func (em *embedded) waitPlan(id string, timeout time.Duration, what string, ok func(p map[string]any) bool) map[string]any {
	em.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p := em.admin("GET", envPath+"/release-plans/"+id, nil)["releasePlan"].(map[string]any)
		if ok(p) {
			return p
		}
		if time.Now().After(deadline) {
			em.t.Fatalf("release plan is not %s after %s: %v", what, timeout, p)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkout evaluates flag checkout for user-1 on the evaluator.
func (em *embedded) checkout() (bool, error) {
	code, out, err := call("POST", "http://"+em.eval.httpAddr+"/v1/evaluate", em.sdkKey,
		map[string]any{"flagKey": "checkout", "context": map[string]any{"targetingKey": "user-1"}})
	if err != nil || code != http.StatusOK {
		return false, fmt.Errorf("evaluate: %d %v: %w", code, out, err)
	}
	v, ok := out["value"].(bool)
	if !ok {
		return false, fmt.Errorf("evaluate: %v", out)
	}
	return v, nil
}

func (em *embedded) waitCheckout(want bool, timeout time.Duration) {
	em.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := em.checkout()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			em.t.Fatalf("the evaluator serves checkout = %v (%v), want %v", got, err, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func state(p map[string]any) string { s, _ := p["state"].(string); return s }

func guardrail(p map[string]any) map[string]any {
	gs, _ := p["guardrailStates"].([]any)
	if len(gs) == 0 {
		return map[string]any{}
	}
	g, _ := gs[0].(map[string]any)
	return g
}

// TestGuardrailBreachRollsTheFlagBackWithinOneEvaluationInterval: a real
// Prometheus scrapes the application's error counter; the plan's first step turns
// checkout on for everyone; the test raises the error counter; as soon as
// Prometheus sees the breach, the control plane pauses the plan and rolls the
// flag back (to its state before the plan: off) within one evaluation interval
// (plus the runner's poll), audited as automatic, and the evaluator serves off.
func TestGuardrailBreachRollsTheFlagBackWithinOneEvaluationInterval(t *testing.T) {
	app := newAppMetrics(t)
	prom := startPrometheus(t, strings.TrimPrefix(app.srv.URL, "http://"))
	em := newReleasePlatform(t, prom.url)
	id := em.createPlan([]any{
		map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 100}, map[string]any{"variant": "off", "weight": 0}}, "minDuration": "3600s"},
		map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 100}}},
	})
	em.waitPlan(id, 10*time.Second, "at its first step", func(p map[string]any) bool { return p["appliedSteps"] == float64(1) })
	em.waitCheckout(true, 10*time.Second)
	em.waitPlan(id, 10*time.Second, "evaluated OK", func(p map[string]any) bool { return guardrail(p)["status"] == "GUARDRAIL_STATUS_OK" })

	// Prometheus must hold the counter's value before the errors (two samples
	// of 0): an increase is measured between samples.
	for deadline := time.Now().Add(30 * time.Second); ; {
		n, err := prom.query(`count_over_time(checkout_errors_total{variant="on"}[1m])`)
		if err == nil && n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not scrape the application: %v %v", n, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	app.errors.Add(100)
	q := strings.ReplaceAll(errorsQuery, "$window", "10s")
	var seen time.Time
	for deadline := time.Now().Add(15 * time.Second); ; {
		v, err := prom.query(q)
		if err == nil && v > 5 {
			seen = time.Now()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus does not see the errors: %v %v", v, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	p := em.waitPlan(id, 10*time.Second, "paused by the breach", func(p map[string]any) bool { return state(p) == "RELEASE_PLAN_STATE_PAUSED" })
	g := guardrail(p)
	if g["status"] != "GUARDRAIL_STATUS_BREACHED" || g["lastValue"].(float64) <= 5 || g["lastEvaluateTime"] == nil {
		t.Fatalf("guardrail state %v, want BREACHED with its value and time", g)
	}
	if r, _ := p["pauseReason"].(string); !strings.Contains(r, `guardrail "checkout-errors" breached`) {
		t.Fatalf("pause reason %q", r)
	}
	if p["appliedSteps"] != nil && p["appliedSteps"] != float64(0) {
		t.Fatalf("applied steps %v after rolling back before the first step, want 0", p["appliedSteps"])
	}
	audit := em.admin("GET", "/v1/orgs/"+org+"/audit?action=release_plan.auto_rollback", nil)
	entries, _ := audit["entries"].([]any)
	if len(entries) != 1 {
		t.Fatalf("%d release_plan.auto_rollback audit entries, want 1: %v", len(entries), audit)
	}
	e := entries[0].(map[string]any)
	if e["actorId"] != "system:release" || !strings.Contains(fmt.Sprint(e["comment"]), "automatic:") {
		t.Fatalf("audit entry %v: want the scheduler's automatic rollback", e)
	}
	at, err := time.Parse(time.RFC3339Nano, e["time"].(string))
	if err != nil {
		t.Fatal(err)
	}
	// One evaluation interval after Prometheus could answer (plus the runner's
	// poll and a second for a loaded machine).
	if lag := at.Sub(seen); lag > checkInterval+pollInterval+time.Second {
		t.Fatalf("rolled back %s after Prometheus saw the breach, want within one evaluation interval (%s)", lag, checkInterval)
	} else {
		t.Logf("rolled back %s after the test saw the breach in Prometheus (check interval %s)", lag, checkInterval)
	}
	cfg := em.admin("GET", envPath+"/flags/checkout", nil)["config"].(map[string]any)["config"].(map[string]any)
	if cfg["on"] == true {
		t.Fatalf("flag configuration %v after rollback, want off as before the plan", cfg)
	}
	em.waitCheckout(false, 10*time.Second)
}

// TestPrometheusUnreachablePausesThePlan: the plan's first step runs while
// Prometheus answers; then Prometheus stops; the next check cannot be evaluated,
// so the plan pauses instead of advancing: the second step (due two seconds
// later) is never applied and the flag keeps the first step's distribution.
func TestPrometheusUnreachablePausesThePlan(t *testing.T) {
	app := newAppMetrics(t)
	prom := startPrometheus(t, strings.TrimPrefix(app.srv.URL, "http://"))
	em := newReleasePlatform(t, prom.url)
	id := em.createPlan([]any{
		map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 10}, map[string]any{"variant": "off", "weight": 90}}, "minDuration": "2s"},
		map[string]any{"weights": []any{map[string]any{"variant": "on", "weight": 100}}},
	})
	em.waitPlan(id, 10*time.Second, "at its first step", func(p map[string]any) bool { return p["appliedSteps"] == float64(1) })
	prom.p.Stop()
	p := em.waitPlan(id, 10*time.Second, "paused", func(p map[string]any) bool { return state(p) == "RELEASE_PLAN_STATE_PAUSED" })
	if g := guardrail(p); g["status"] != "GUARDRAIL_STATUS_ERROR" || !strings.Contains(fmt.Sprint(g["error"]), "unreachable") {
		t.Fatalf("guardrail state %v, want ERROR naming the unreachable Prometheus", g)
	}
	if r, _ := p["pauseReason"].(string); !strings.Contains(r, "could not be evaluated") {
		t.Fatalf("pause reason %q", r)
	}
	time.Sleep(3 * time.Second) // past the second step's due time
	p = em.admin("GET", envPath+"/release-plans/"+id, nil)["releasePlan"].(map[string]any)
	if state(p) != "RELEASE_PLAN_STATE_PAUSED" || p["appliedSteps"] != float64(1) {
		t.Fatalf("plan %s with %v steps applied, want PAUSED at its first step", state(p), p["appliedSteps"])
	}
	cfg := em.admin("GET", envPath+"/flags/checkout", nil)["config"].(map[string]any)["config"].(map[string]any)
	w := cfg["defaultServe"].(map[string]any)["rollout"].(map[string]any)["weights"].([]any)[0].(map[string]any)
	if w["variant"] != "on" || w["weight"] != float64(10) {
		t.Fatalf("default rule %v, want the first step's 10%% on", cfg["defaultServe"])
	}
	audit := em.admin("GET", "/v1/orgs/"+org+"/audit?action=release_plan.auto_pause", nil)
	if entries, _ := audit["entries"].([]any); len(entries) != 1 {
		t.Fatalf("%d release_plan.auto_pause audit entries, want 1", len(entries))
	}
}
