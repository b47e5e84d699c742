package platform

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

// TestPropagation measures what one change costs in an environment of N flags
// (`make bench-propagation`; docs/benchmarks.md, "Propagation"). For each N in
// FLAGFORGE_BENCH_PROPAGATION (e.g. "100,1000,10000") and each stack in
// FLAGFORGE_BENCH_STACKS ("embedded,postgres" by default: the control plane on
// SQLite with an evaluator on the sync stream; the control plane on PostgreSQL
// with an evaluator reading Redis), it creates N flags with realistic
// configurations (~300 B each in the manifest) in bulk, then flips one flag
// FLAGFORGE_BENCH_CHANGES times (default 30), one at a time, and reports:
//
//   - change -> stream client: from just before the REST PUT is sent until a
//     StreamManifest subscriber of the evaluator receives the version carrying it
//     (p50 and max);
//   - CPU per change of the control plane and of the evaluator: utime+stime of
//     each process (/proc/<pid>/stat, every thread) over the changes, divided by
//     their number; the processes are otherwise idle, so the figure is what the
//     changes cost and contention distorts it little;
//   - the full manifest's size (the signed payload of the subscriber's snapshot).
//
// Every figure is logged as one "propagation:" line per run.
func TestPropagation(t *testing.T) {
	sizes := os.Getenv("FLAGFORGE_BENCH_PROPAGATION")
	if sizes == "" {
		t.Skip("set FLAGFORGE_BENCH_PROPAGATION=100,1000,10000 (flags per environment) to measure propagation")
	}
	changes := 30
	if v := os.Getenv("FLAGFORGE_BENCH_CHANGES"); v != "" {
		var err error
		if changes, err = strconv.Atoi(v); err != nil || changes < 1 {
			t.Fatalf("FLAGFORGE_BENCH_CHANGES=%q: want a positive number", v)
		}
	}
	stacks := []string{"embedded", "postgres"}
	if v := os.Getenv("FLAGFORGE_BENCH_STACKS"); v != "" {
		stacks = strings.Split(v, ",")
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			t.Fatalf("FLAGFORGE_BENCH_PROPAGATION: %q is not a number of flags", s)
		}
		for _, stack := range stacks {
			t.Run(fmt.Sprintf("%s/%d", stack, n), func(t *testing.T) {
				var pl *platform
				var e *evaluator
				switch stack {
				case "embedded":
					em := newEmbedded(t)
					pl, e = em.platform, em.eval
					pl.verifier = verifierFor(t, filepath.Join(pl.dir, "controlplane", "signing-key.pub.pem"))
				case "postgres":
					pl = newPlatform(t, false)
					pl.admin("POST", "/v1/orgs/"+org+"/projects", map[string]any{"project": map[string]any{"key": project, "name": "Web"}})
					key := pl.admin("POST", envPath+"/sdk-keys", map[string]any{"name": "bench", "kind": "SDK_KEY_KIND_SERVER"})
					pl.sdkKey, _ = key["secret"].(string)
					e = pl.startEvaluator("evaluator", filepath.Join(pl.dir, "evaluator"))
				default:
					t.Fatalf("FLAGFORGE_BENCH_STACKS: unknown stack %q (embedded, postgres)", stack)
				}
				r := measurePropagation(t, pl, e, n, changes)
				t.Logf("propagation: stack=%s flags=%d changes=%d change->stream p50=%s max=%s controlplane_cpu/change=%s evaluator_cpu/change=%s manifest=%d B (%d B/flag) bulk=%s",
					stack, n, changes, r.p50.Round(100*time.Microsecond), r.max.Round(100*time.Microsecond),
					r.cpCPU.Round(10*time.Microsecond), r.evCPU.Round(10*time.Microsecond), r.manifestBytes,
					r.manifestBytes/n, r.bulk.Round(time.Millisecond))
			})
		}
	}
}

func verifierFor(t *testing.T, pubPath string) *manifest.Verifier {
	t.Helper()
	pub, err := os.ReadFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	v, err := manifest.NewVerifier(time.Now, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type propagation struct {
	p50, max      time.Duration
	cpCPU, evCPU  time.Duration
	manifestBytes int
	bulk          time.Duration
}

// benchConfig is the configuration every bench flag gets (~300 B in the
// manifest with the flag's key and variants): a segment rule, a rule of three
// clauses serving a rollout, and a default rollout.
func benchConfig(on bool) map[string]any {
	return map[string]any{
		"on": on, "offVariant": "off",
		"rules": []any{
			map[string]any{"id": "beta", "clauses": []any{map[string]any{"operator": "segment_match", "values": []any{"beta"}}},
				"serve": map[string]any{"variant": "on"}},
			map[string]any{"id": "eu-staff", "clauses": []any{
				map[string]any{"attribute": "country", "operator": "in", "values": []any{"de", "fr", "it", "es", "nl", "be", "at"}},
				map[string]any{"attribute": "email", "operator": "ends_with", "values": []any{"@acme.test", "@acme.example"}},
				map[string]any{"attribute": "plan", "operator": "in", "values": []any{"pro", "team", "enterprise"}},
			}, "serve": map[string]any{"rollout": map[string]any{"weights": []any{
				map[string]any{"variant": "on", "weight": 50}, map[string]any{"variant": "off", "weight": 50}}}}},
		},
		"defaultServe": map[string]any{"rollout": map[string]any{"weights": []any{
			map[string]any{"variant": "on", "weight": 25}, map[string]any{"variant": "off", "weight": 75}}}},
	}
}

func benchFlag(i int) string { return fmt.Sprintf("bench-flag-%05d", i) }

// measurePropagation creates n flags in bulk (1,000 per call, within the default
// request size), waits until e serves the last one, then times the changes.
func measurePropagation(t *testing.T, pl *platform, e *evaluator, n, changes int) propagation {
	t.Helper()
	var r propagation
	began := time.Now()
	for from := 0; from < n; from += 1000 {
		flags, configs := []any{}, []any{}
		for i := from; i < min(n, from+1000); i++ {
			flags = append(flags, map[string]any{"key": benchFlag(i), "type": "boolean", "tags": []any{"bench"}})
			configs = append(configs, map[string]any{"environment": environment, "flag": benchFlag(i), "config": benchConfig(true)})
		}
		body := map[string]any{"flags": flags, "configs": configs, "comment": "bench"}
		if from == 0 {
			body["segments"] = []any{map[string]any{"environment": environment, "segment": map[string]any{"key": "beta", "included": []any{"u1", "u2"}}}}
		}
		code, out, err := callWithin(5*time.Minute, "POST", "http://"+pl.cpHTTP+"/v1/orgs/"+org+"/projects/"+project+":bulkWrite",
			pl.adminToken, body)
		if err != nil || code != http.StatusOK {
			t.Fatalf("bulkWrite flags %d..: %d %v %v", from, code, out, err)
		}
	}
	last := benchFlag(n - 1)
	for deadline := time.Now().Add(time.Duration(60+n/100) * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, out, err := call("POST", "http://"+e.httpAddr+"/v1/evaluate", pl.sdkKey, map[string]any{"flagKey": last,
			"context": map[string]any{"targetingKey": "u9"}})
		if err == nil && code == http.StatusOK && out["errorCode"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the evaluator does not serve %s: %d %v %v", last, code, out, err)
		}
	}
	r.bulk = time.Since(began)

	conn, err := grpc.NewClient(e.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(1<<30)))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+pl.sdkKey))
	defer cancel()
	stream, err := evaluationv1.NewEvaluationServiceClient(conn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		on   bool
		at   time.Time
		size int
		err  error
	}
	const flipped = "bench-flag-00000"
	got := make(chan state, 16)
	go func() {
		for {
			msg, err := stream.Recv()
			if err != nil {
				got <- state{err: err}
				return
			}
			now := time.Now()
			switch {
			case msg.GetDelta() != nil:
				if d, err := pl.verifier.Delta(msg.GetDelta()); err == nil {
					if on, found := flagState(d.GetUpsertedFlags(), flipped); found {
						got <- state{on: on, at: now}
					}
				}
			case msg.GetSnapshot() != nil:
				if m, err := pl.verifier.Manifest(msg.GetSnapshot()); err == nil {
					on, _ := flagState(m.GetFlags(), flipped)
					got <- state{on: on, at: now, size: len(msg.GetSnapshot().GetPayload())}
				}
			}
		}
	}()
	first := <-got
	if first.err != nil || !first.on {
		t.Fatalf("initial snapshot: %+v", first)
	}
	r.manifestBytes = first.size
	cur := pl.admin("GET", envPath+"/flags/"+flipped, nil)
	rev, _ := strconv.Atoi(fmt.Sprint(cur["config"].(map[string]any)["revision"]))
	// The bulk's aftermath (older versions' snapshots, garbage collection) is not
	// part of a change's cost: wait until both processes are idle.
	waitIdle(t, pl.cp.cmd.Process.Pid, e.p.cmd.Process.Pid)
	cp0, ev0 := cpuTime(t, pl.cp.cmd.Process.Pid), cpuTime(t, e.p.cmd.Process.Pid)
	lat := make([]time.Duration, 0, changes)
	for i := range changes {
		on := i%2 == 1
		sent := time.Now()
		pl.admin("PUT", envPath+"/flags/"+flipped, map[string]any{"config": benchConfig(on), "revision": rev})
		rev++
	wait:
		for {
			select {
			case s := <-got:
				if s.err != nil {
					t.Fatal(s.err)
				}
				if s.on == on {
					lat = append(lat, s.at.Sub(sent))
					break wait
				}
			case <-time.After(2 * time.Minute):
				t.Fatalf("change %d not received within 2 minutes", i)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.cpCPU = (cpuTime(t, pl.cp.cmd.Process.Pid) - cp0) / time.Duration(changes)
	r.evCPU = (cpuTime(t, e.p.cmd.Process.Pid) - ev0) / time.Duration(changes)
	slices.Sort(lat)
	r.p50, r.max = lat[len(lat)/2], lat[len(lat)-1]
	return r
}

// waitIdle waits (at most a minute) until every process of pids used at most
// one clock tick of CPU in half a second.
func waitIdle(t *testing.T, pids ...int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, pid := range pids {
		last := cpuTime(t, pid)
		for time.Now().Before(deadline) {
			time.Sleep(500 * time.Millisecond)
			now := cpuTime(t, pid)
			if now-last <= 10*time.Millisecond {
				break
			}
			last = now
		}
	}
}

// cpuTime is the CPU time (user + system, every thread) process pid has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces) start at state (3rd).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	// USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)).
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
