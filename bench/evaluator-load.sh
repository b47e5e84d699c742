#!/usr/bin/env bash
# Evaluator load harness. Idempotent: builds the evaluator and the setup tool,
# starts a private redis-server on a free port, publishes a signed manifest of 1,000
# flags (services/evaluator/bench/setup), starts the evaluator, runs
#   1. gRPC Evaluate with h2load (nghttp2-client): prebuilt request frame,
#   2. REST POST /v1/evaluate with wrk + Lua: a distinct targetingKey per request,
#   3. OFREP POST /ofrep/v1/evaluate/flags/targeted the same way (same flag, same
#      contexts), for comparison with 2,
#   4. bulk evaluation with the client key (200 client-visible flags of 1,000):
#      OFREP POST /ofrep/v1/evaluate/flags and POST /v1/evaluate/all, distinct
#      contexts (BULK=0 skips them),
# and prints requests/s, p50/p99 latency, server CPU time per request
# (utime+stime from /proc/<pid>/stat) and resident memory; then stops everything.
#
#   bench/evaluator-load.sh                   # 50 connections, 20 s per run
#   DURATION=5 CONNS=50 bench/evaluator-load.sh
#   EVALUATOR_BIN=/tmp/old/evaluator bench/evaluator-load.sh   # a prebuilt evaluator (e.g. another commit) for comparison
#
# Needs: go, redis-server, h2load, wrk (apt-get install nghttp2-client wrk).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-20}"
CONNS="${CONNS:-50}"
STREAMS="${STREAMS:-10}"     # h2load concurrent streams per connection
THREADS="${THREADS:-2}"
WORK="$(mktemp -d /tmp/flagforge-bench.XXXXXX)"
PIDS=()

cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Install the load generators (Debian packages) when missing; idempotent.
if ! command -v h2load >/dev/null || ! command -v wrk >/dev/null || ! command -v redis-server >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >/dev/null || true
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nghttp2-client wrk redis-server >/dev/null
fi
for tool in go redis-server h2load wrk; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nghttp2-client wrk redis-server)" >&2; exit 1; }
done

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

echo "== build"
(cd "$ROOT" && go build -o "$WORK/setup" ./services/evaluator/bench/setup)
if [ -n "${EVALUATOR_BIN:-}" ]; then
  cp "$EVALUATOR_BIN" "$WORK/evaluator"
else
  (cd "$ROOT" && go build -o "$WORK/evaluator" ./services/evaluator/cmd/evaluator)
fi

REDIS_PORT="$(free_port)"; GRPC_PORT="$(free_port)"; HTTP_PORT="$(free_port)"; ADMIN_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== publish 1,000 flags"
"$WORK/setup" -redis "redis://127.0.0.1:$REDIS_PORT/0" -out "$WORK"

FLAGFORGE_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0" \
FLAGFORGE_TRUSTED_KEYS="$WORK/trusted.pem" \
FLAGFORGE_ENVIRONMENTS="bench/load/production" \
FLAGFORGE_DATA_DIR="" \
FLAGFORGE_GRPC_ADDR="127.0.0.1:$GRPC_PORT" FLAGFORGE_HTTP_ADDR="127.0.0.1:$HTTP_PORT" \
FLAGFORGE_ADMIN_ADDR="127.0.0.1:$ADMIN_PORT" \
FLAGFORGE_RATE_LIMIT=0 FLAGFORGE_LOG_LEVEL=warn \
  "$WORK/evaluator" 2>"$WORK/evaluator.log" &
EVAL_PID=$!
PIDS+=("$EVAL_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { cat "$WORK/evaluator.log"; exit 1; }

TICK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14+$15}' "/proc/$EVAL_PID/stat"; }
rss_kib() { awk '/VmRSS/{print $2}' "/proc/$EVAL_PID/status"; }
# bulk_requests counts the calls of one bulk endpoint (the latency histogram's count).
bulk_requests() {
  local method=EvaluateAll
  [ "$1" = /ofrep/v1/evaluate/flags ] && method=OFREPBulk
  curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$method" '$1 ~ "^flagforge_evaluator_evaluation_duration_seconds_count" && $1 ~ "method=\""m"\"" {s+=$2} END{printf "%d", s}'
}
evaluations() { curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk '/^flagforge_evaluator_evaluations_total/{s+=$2} END{printf "%d", s}'; }

echo "== resident memory with 1,000 flags loaded (idle): $(( $(rss_kib) / 1024 )) MiB ($(rss_kib) KiB)"

SERVER_KEY="$(cat "$WORK/server.key")"
# Sanity: the REST call answers the targeting flag.
curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/v1/evaluate" -H "Authorization: Bearer $SERVER_KEY" \
  -d '{"flagKey":"targeted","context":{"targetingKey":"u1","email":"a@flagforge.dev"}}'; echo

report() { # name requests cpu_ticks_delta
  local name="$1" reqs="$2" ticks="$3"
  awk -v n="$name" -v r="$reqs" -v t="$ticks" -v hz="$TICK" 'BEGIN{
    printf "%s: server CPU %.2f s for %d requests = %.1f us/request\n", n, t/hz, r, (r>0 ? t/hz*1e6/r : 0) }'
}

echo "== gRPC Evaluate: h2load -c $CONNS -m $STREAMS -D $DURATION (one prebuilt request frame)"
E0="$(evaluations)"; C0="$(cpu_ticks)"
h2load -c "$CONNS" -m "$STREAMS" -t "$THREADS" -D "$DURATION" --warm-up-time=1 \
  -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $SERVER_KEY" \
  -d "$WORK/evaluate-0.bin" --log-file="$WORK/h2load.log" \
  "http://127.0.0.1:$GRPC_PORT/flagforge.evaluation.v1.EvaluationService/Evaluate" | tee "$WORK/h2load.out" | grep -E 'finished in|requests:|status codes|time for request'
C1="$(cpu_ticks)"; E1="$(evaluations)"
REQS=$((E1 - E0))
sort -n -k3 "$WORK/h2load.log" | awk '{d[NR]=$3} END{ if (NR>0) printf "gRPC latency (h2load log, %d requests): p50 %.2f ms, p99 %.2f ms\n", NR, d[int(NR*0.50)]/1000, d[int(NR*0.99)]/1000 }'
echo "gRPC evaluations counted by the server: $REQS ($(awk -v r="$REQS" -v d="$DURATION" 'BEGIN{printf "%.0f", r/d}') req/s over ${DURATION}s, incl. warm-up)"
report gRPC "$REQS" "$((C1 - C0))"
echo "RSS after gRPC load: $(( $(rss_kib) / 1024 )) MiB"

cat >"$WORK/evaluate.lua" <<LUA
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function request()
  counter = counter + 1
  local key = "user-" .. tid .. "-" .. counter
  local body = '{"flagKey":"targeted","context":{"targetingKey":"' .. key .. '","email":"' .. key .. '@example.com"}}'
  return wrk.format("POST", "/v1/evaluate", {["Content-Type"] = "application/json", ["Authorization"] = "Bearer $SERVER_KEY"}, body)
end
function done(summary, latency, requests)
  io.write(string.format("wrk errors: connect %d, read %d, write %d, status %d, timeout %d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout))
end
LUA

echo "== REST POST /v1/evaluate: wrk -c $CONNS -d ${DURATION}s (distinct targetingKey per request)"
E0="$(evaluations)"; C0="$(cpu_ticks)"
wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency -s "$WORK/evaluate.lua" "http://127.0.0.1:$HTTP_PORT" \
  | grep -E 'Requests/sec|requests in|50%|99%|Non-2xx|wrk errors'
C1="$(cpu_ticks)"; E1="$(evaluations)"
REQS=$((E1 - E0))
report REST "$REQS" "$((C1 - C0))"
echo "RSS after REST load: $(( $(rss_kib) / 1024 )) MiB"

sed -e 's#"/v1/evaluate"#"/ofrep/v1/evaluate/flags/targeted"#' \
    -e "s#'{\"flagKey\":\"targeted\",\"context\"#'{\"context\"#" "$WORK/evaluate.lua" >"$WORK/ofrep.lua"
grep -q '/ofrep/v1/evaluate/flags/targeted' "$WORK/ofrep.lua" && ! grep -q flagKey "$WORK/ofrep.lua" || { echo "ofrep.lua not derived" >&2; exit 1; }
curl -sf -X POST "http://127.0.0.1:$HTTP_PORT/ofrep/v1/evaluate/flags/targeted" -H "Authorization: Bearer $SERVER_KEY" \
  -d '{"context":{"targetingKey":"u1","email":"a@flagforge.dev"}}'; echo

echo "== OFREP POST /ofrep/v1/evaluate/flags/targeted: wrk -c $CONNS -d ${DURATION}s (distinct targetingKey per request)"
E0="$(evaluations)"; C0="$(cpu_ticks)"
wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency -s "$WORK/ofrep.lua" "http://127.0.0.1:$HTTP_PORT" \
  | grep -E 'Requests/sec|requests in|50%|99%|Non-2xx|wrk errors'
C1="$(cpu_ticks)"; E1="$(evaluations)"
REQS=$((E1 - E0))
report OFREP "$REQS" "$((C1 - C0))"
echo "RSS after OFREP load: $(( $(rss_kib) / 1024 )) MiB"

if [ "${BULK:-1}" != 0 ]; then
  CLIENT_KEY="$(cat "$WORK/client.key")"
  for path in /ofrep/v1/evaluate/flags /v1/evaluate/all; do
    sed -e "s#\"/v1/evaluate\"#\"$path\"#" -e "s#'{\"flagKey\":\"targeted\",\"context\"#'{\"context\"#" \
        -e "s#Bearer $SERVER_KEY#Bearer $CLIENT_KEY#" "$WORK/evaluate.lua" >"$WORK/bulk.lua"
    grep -q "\"$path\"" "$WORK/bulk.lua" && ! grep -q flagKey "$WORK/bulk.lua" || { echo "bulk.lua not derived" >&2; exit 1; }
    FLAGS="$(curl -sf -X POST "http://127.0.0.1:$HTTP_PORT$path" -H "Authorization: Bearer $CLIENT_KEY" \
      -d '{"context":{"targetingKey":"u1","region":"us-east-1"}}' | grep -o '"reason"' | wc -l)"
    echo "== bulk POST $path with the client key ($FLAGS flags per answer): wrk -c $CONNS -d ${DURATION}s"
    R0="$(bulk_requests "$path")"; C0="$(cpu_ticks)"
    wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" --latency -s "$WORK/bulk.lua" "http://127.0.0.1:$HTTP_PORT" \
      | grep -E 'Requests/sec|requests in|50%|99%|Non-2xx|wrk errors'
    C1="$(cpu_ticks)"; R1="$(bulk_requests "$path")"
    report "bulk $path" "$((R1 - R0))" "$((C1 - C0))"
  done
fi

if [ -n "${PPROF:-}" ]; then
  echo "== CPU profile (${PPROF}) under REST load -> $ROOT/bench/cpu-rest.pprof"
  wrk -t "$THREADS" -c "$CONNS" -d 12s -s "$WORK/evaluate.lua" "http://127.0.0.1:$HTTP_PORT" >/dev/null &
  WRK=$!
  curl -s -o "$ROOT/bench/cpu-rest.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=10"
  wait "$WRK"
  echo "== CPU profile under gRPC load -> $ROOT/bench/cpu-grpc.pprof"
  h2load -c "$CONNS" -m "$STREAMS" -t "$THREADS" -D 12 \
    -H 'content-type: application/grpc' -H 'te: trailers' -H "authorization: Bearer $SERVER_KEY" \
    -d "$WORK/evaluate-0.bin" "http://127.0.0.1:$GRPC_PORT/flagforge.evaluation.v1.EvaluationService/Evaluate" >/dev/null &
  H2=$!
  curl -s -o "$ROOT/bench/cpu-grpc.pprof" "http://127.0.0.1:$ADMIN_PORT/debug/pprof/profile?seconds=10"
  wait "$H2"
fi
echo "== done"
