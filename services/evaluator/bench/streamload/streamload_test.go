package streamload

import (
	"os"
	"testing"
	"time"
)

// recordedBytesPerStream is the evaluator's RSS growth per stream that
// docs/benchmarks.md records for 10,000 mixed streams ("Streaming connections").
// TestChaosStreams fails when a run exceeds it by more than 25%.
const recordedBytesPerStream = 55_200

// TestChaosStreams is the 10,000-stream version of make bench-streams (the
// same code path: a real control plane and evaluator, the mixed streams,
// heartbeats, 5 changes that every stream must receive, then every stream
// closed and the evaluator's goroutines back to their level before). It fails
// when the evaluator's memory per stream exceeds the recorded figure by more
// than 25%, on a goroutine leak, or on any stream that missed a change.
//
//	FLAGFORGE_CHAOS=1 go test -count=1 -v -run TestChaosStreams ./services/evaluator/bench/streamload
func TestChaosStreams(t *testing.T) {
	if os.Getenv("FLAGFORGE_CHAOS") != "1" {
		t.Skip("a slow load test (about 2 minutes): FLAGFORGE_CHAOS=1 (make chaos)")
	}
	r, err := Run(t.Context(), Config{N: 10_000, Hold: 30 * time.Second, Heartbeat: 5 * time.Second, Timeout: 8 * time.Minute, Log: testLog{t}})
	if r != nil {
		t.Logf("\n%s", r)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, limit := r.BytesPerStream(), recordedBytesPerStream*1.25; got > limit {
		t.Errorf("evaluator memory per stream %.1f KB, more than 125%% of the recorded %.1f KB", got/1000, recordedBytesPerStream/1000.0)
	}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(string(p))
	return len(p), nil
}
