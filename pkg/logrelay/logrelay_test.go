package logrelay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/logrelay"
)

func TestAFloodOfLinesIsCutToTheBurstAndReportedAsOneCount(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	r := logrelay.New(logrelay.Config{
		Logger: slog.New(slog.NewJSONHandler(&buf, nil)), Source: "go-redis",
		Burst: 3, Window: time.Minute, Now: func() time.Time { return now },
	})
	for i := range 20 {
		r.Printf(context.Background(), "redis: %d failed to dial: connection refused\n", i)
	}
	now = now.Add(time.Minute)
	r.Printf(context.Background(), "redis: one more")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 5 {
		t.Fatalf("want 3 lines, a suppression report and the next line; got %d:\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON: %s", i, l)
		}
		if m["source"] != "go-redis" || m["level"] != "WARN" {
			t.Errorf("line %d: %v", i, m)
		}
		switch i {
		case 0:
			if m["message"] != "redis: 0 failed to dial: connection refused" {
				t.Errorf("first line: %v", m["message"])
			}
		case 3:
			if m["suppressed"] != float64(17) {
				t.Errorf("suppression report: %v", m)
			}
		case 4:
			if m["message"] != "redis: one more" {
				t.Errorf("next window: %v", m)
			}
		}
	}
}
