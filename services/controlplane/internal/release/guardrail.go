package release

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Evaluator measures one guardrail of a plan of flag in ref: the value compared
// with the guardrail's threshold, or an error when it cannot be measured (the
// plan then pauses instead of advancing).
type Evaluator interface {
	Evaluate(ctx context.Context, ref store.EnvRef, flag string, g *adminv1.Guardrail) (float64, error)
}

// ErrNoPrometheus is the error of a PromQL guardrail when no Prometheus is
// configured.
var ErrNoPrometheus = errors.New("no Prometheus is configured (FLAGFORGE_PROMETHEUS_URL)")

// Prometheus evaluates PromQL guardrails with instant queries against one
// Prometheus server's HTTP API (GET /api/v1/query).
type Prometheus struct {
	base   *url.URL
	client *http.Client
}

// NewPrometheus returns a client of the Prometheus at base (e.g.
// "http://prometheus:9090"); timeout bounds each query (0: 10s).
func NewPrometheus(base string, timeout time.Duration) (*Prometheus, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("prometheus URL %q: want http(s)://host[:port][/prefix]", base)
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &Prometheus{base: u, client: &http.Client{Timeout: timeout}}, nil
}

// PromDuration formats d in Prometheus duration syntax ("90s", "5m", "1h").
func PromDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// Query runs an instant query and returns its value: the first sample of a
// vector (0 when the vector is empty: nothing happened), or a scalar.
func (p *Prometheus) Query(ctx context.Context, query string) (float64, error) {
	u := p.base.JoinPath("api/v1/query")
	u.RawQuery = url.Values{"query": {query}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("prometheus unreachable: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("prometheus: %w", err)
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("prometheus answered %s with no API response", resp.Status)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s", r.Error)
	}
	var sample []any
	switch r.Data.ResultType {
	case "vector":
		var v []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &v); err != nil {
			return 0, fmt.Errorf("prometheus: vector: %w", err)
		}
		if len(v) == 0 {
			return 0, nil
		}
		sample = v[0].Value
	case "scalar":
		if err := json.Unmarshal(r.Data.Result, &sample); err != nil {
			return 0, fmt.Errorf("prometheus: scalar: %w", err)
		}
	default:
		return 0, fmt.Errorf("prometheus: the query returned a %s; a guardrail needs an instant vector or a scalar", r.Data.ResultType)
	}
	if len(sample) != 2 {
		return 0, errors.New("prometheus: malformed sample")
	}
	s, _ := sample[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("prometheus: sample value %q: %w", s, err)
	}
	return f, nil
}

// Usage is what sdk_errors guardrails read: the evaluations and errors SDKs and
// evaluators reported per variant (store.Usage).
type Usage interface {
	VariantUsage(ctx context.Context, ref store.EnvRef, flag string, since time.Time) ([]store.VariantTotal, error)
}

// Guardrails evaluates every kind of guardrail.
type Guardrails struct {
	// Prometheus answers PromQL guardrails (nil: they fail with ErrNoPrometheus).
	Prometheus *Prometheus
	// Usage answers sdk_errors guardrails (nil: they fail).
	Usage Usage
	// Now is the clock of sdk_errors windows (nil: time.Now).
	Now func() time.Time
}

// Evaluate measures g.
func (e Guardrails) Evaluate(ctx context.Context, ref store.EnvRef, flag string, g *adminv1.Guardrail) (float64, error) {
	switch c := g.GetCheck().(type) {
	case *adminv1.Guardrail_Promql:
		if e.Prometheus == nil {
			return 0, ErrNoPrometheus
		}
		q := strings.ReplaceAll(c.Promql.GetQuery(), "$window", PromDuration(g.GetWindow().AsDuration()))
		return e.Prometheus.Query(ctx, q)
	case *adminv1.Guardrail_SdkErrors:
		if e.Usage == nil {
			return 0, errors.New("no usage store: sdk_errors guardrails cannot be evaluated")
		}
		now := time.Now
		if e.Now != nil {
			now = e.Now
		}
		totals, err := e.Usage.VariantUsage(ctx, ref, flag, now().Add(-g.GetWindow().AsDuration()))
		if err != nil {
			return 0, fmt.Errorf("reading usage: %w", err)
		}
		return SDKErrors(c.SdkErrors, totals), nil
	}
	return 0, fmt.Errorf("guardrail %q has no check", g.GetName())
}

// SDKErrors is the value of an sdk_errors check over a window's totals: the
// errors of its variant ("" : every variant, failed evaluations included) as a
// count, or divided by the evaluations (RATIO, the default). Fewer evaluations
// than the check's minimum: 0 (too little traffic to judge).
func SDKErrors(c *adminv1.SdkErrorsCheck, totals []store.VariantTotal) float64 {
	var n, errs int64
	for _, t := range totals {
		if c.GetVariant() == "" || t.Variant == c.GetVariant() {
			n += t.Evaluations
			errs += t.Errors
		}
	}
	if n < c.GetMinEvaluations() {
		return 0
	}
	if c.GetMeasure() == adminv1.SdkErrorsMeasure_SDK_ERRORS_MEASURE_COUNT {
		return float64(errs)
	}
	if n == 0 {
		return 0
	}
	return float64(errs) / float64(n)
}

// evaluate measures every guardrail of p at now.
func evaluate(ctx context.Context, ev Evaluator, ref store.EnvRef, p *adminv1.ReleasePlan, now time.Time) ([]*adminv1.GuardrailState, Outcome, string) {
	states := make([]*adminv1.GuardrailState, 0, len(p.GetGuardrails()))
	outcome, why := Held, ""
	for _, g := range p.GetGuardrails() {
		st := &adminv1.GuardrailState{Name: g.GetName(), LastEvaluateTime: timestampOf(now)}
		v, err := ev.Evaluate(ctx, ref, p.GetFlag(), g)
		if math.IsNaN(v) {
			v = 0 // 0/0: no traffic in the window, nothing went wrong
		}
		switch {
		case err != nil:
			st.Status, st.Error = adminv1.GuardrailStatus_GUARDRAIL_STATUS_ERROR, err.Error()
			if outcome == Held {
				outcome, why = Unknown, fmt.Sprintf("guardrail %q could not be evaluated: %v", g.GetName(), err)
			}
		case v > g.GetThreshold():
			st.Status, st.LastValue = adminv1.GuardrailStatus_GUARDRAIL_STATUS_BREACHED, v
			if outcome != Breached {
				outcome, why = Breached, fmt.Sprintf("guardrail %q breached: %g > %g", g.GetName(), v, g.GetThreshold())
			}
		default:
			st.Status, st.LastValue = adminv1.GuardrailStatus_GUARDRAIL_STATUS_OK, v
		}
		states = append(states, st)
	}
	return states, outcome, why
}
