// Command streams is the evaluator's streaming load generator (make
// bench-streams N=100000): see package streamload.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flagforge/flagforge/services/evaluator/bench/streamload"
)

func main() {
	var c streamload.Config
	flag.IntVar(&c.N, "n", 10000, "streams")
	flag.Float64Var(&c.SSE, "sse", 0.8, "share of /v1/sse browser streams")
	flag.Float64Var(&c.NDJSON, "ndjson", 0.1, "share of /v1/stream NDJSON streams")
	flag.Float64Var(&c.GRPC, "grpc", 0.1, "share of gRPC StreamManifest streams")
	flag.IntVar(&c.PerConn, "per-conn", 0, "streams per TCP connection (0: 1, or the fewest that fit under RLIMIT_NOFILE)")
	flag.IntVar(&c.Contexts, "contexts", 1000, "distinct SSE contexts (users)")
	flag.IntVar(&c.Flags, "flags", 20, "client-visible flags")
	flag.DurationVar(&c.Hold, "hold", 0, "how long streams are held before the changes (default 2m)")
	flag.DurationVar(&c.Heartbeat, "heartbeat", 0, "evaluator heartbeat period (default 15s)")
	flag.IntVar(&c.Changes, "changes", 5, "flag changes published")
	flag.DurationVar(&c.Timeout, "timeout", 0, "bound on the whole run (default 10m)")
	flag.StringVar(&c.Bin, "bin", "", "directory with prebuilt flagforge-controlplane and flagforge-evaluator (default: build them)")
	flag.StringVar(&c.Profiles, "profiles", "", "directory for the evaluator's heap and goroutine profiles at the end of the hold")
	flag.Func("evaluator-env", "NAME=value added to the evaluator's environment (repeatable)", func(v string) error {
		c.EvaluatorEnv = append(c.EvaluatorEnv, v)
		return nil
	})
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := streamload.Run(ctx, c)
	if r != nil {
		fmt.Print(r)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "streams:", err)
		os.Exit(1)
	}
}
