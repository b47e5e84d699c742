#!/usr/bin/env bash
# The embedded platform, no external services: the control plane on SQLite and one
# evaluator following it over the gRPC sync stream.
#
#   scripts/run.sh               (make run) control plane + evaluator 0, in the foreground
#   scripts/run.sh evaluator N   (make run-evaluator N=1) one more evaluator beside a
#                                running `make run`: gRPC 9091+N*10, HTTP 8081+N*10
#
# Everything lives in ./data. The first run generates the signing key, the sync token,
# an admin token and SDK keys (./data/*.secret, mode 0600), and creates organization
# "local" with project "demo"; later runs reuse them and print the same credentials.
# Ctrl-C stops every process this script started. Logs: ./data/*.log.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
DATA=$ROOT/data
BIN=$ROOT/bin
GO=${GO:-go}

ORG=local
PROJECT=demo
ENVIRONMENT=production
ADMIN_EMAIL=admin@example.com
CP_GRPC=127.0.0.1:9090
CP_HTTP=127.0.0.1:8080
CP_URL=http://$CP_HTTP

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

command -v curl >/dev/null || die "curl is required"

# random prints n characters of [A-Za-z0-9] from the kernel's CSPRNG.
random() { LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"; }

# secret_file NAME: the path of data/NAME.secret.
secret_file() { printf '%s/%s.secret' "$DATA" "$1"; }

# wait_ready URL PID WHAT: poll URL until it answers 200; fail if PID died.
wait_ready() {
  local url=$1 pid=$2 what=$3 i
  for ((i = 0; i < 300; i++)); do
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$what exited; see its log"
    sleep 0.1
  done
  die "$what not ready after 30s ($url); see its log"
}

# json_field NAME: the first "NAME":"value" string of the JSON on stdin.
json_field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1; }

# admin METHOD PATH [BODY]: an admin REST call; prints the body, fails on non-2xx.
admin() {
  local args=(-sS --max-time 10 -X "$1" "$CP_URL$2" -H "Authorization: Bearer $ADMIN_TOKEN" -w '\n%{http_code}')
  [[ $# -ge 3 ]] && args+=(-H 'Content-Type: application/json' -d "$3")
  local out code
  out=$(curl "${args[@]}")
  code=${out##*$'\n'}
  out=${out%$'\n'*}
  printf '%s' "$out"
  [[ $code == 2* ]] || { printf '\n%s %s: HTTP %s\n' "$1" "$2" "$code" >&2; return 1; }
}

build() {
  log "building bin/flagforge-controlplane and bin/flagforge-evaluator"
  mkdir -p "$BIN"
  "$GO" build -o "$BIN/flagforge-controlplane" ./services/controlplane/cmd/controlplane
  "$GO" build -o "$BIN/flagforge-evaluator" ./services/evaluator/cmd/evaluator
}

# Processes started by this script, stopped in reverse order on exit.
PIDS=()
stop_all() {
  trap - INT TERM EXIT
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null || true
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    wait "${PIDS[i]}" 2>/dev/null || true
  done
  [[ ${#PIDS[@]} -gt 0 ]] && log "stopped"
  PIDS=()
}
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM
trap stop_all EXIT

# start_evaluator N: evaluator N in the background (PID in EVAL_PID).
start_evaluator() {
  local n=$1
  local grpc_port=$((9091 + n * 10)) http_port=$((8081 + n * 10)) admin_port=$((6061 + n * 10))
  [[ -s $DATA/sync-token && -s $DATA/signing-key.pub.pem ]] ||
    die "no sync token or public key in $DATA: start the platform first (make run)"
  mkdir -p "$DATA/evaluator-$n"
  FLAGFORGE_SYNC_ADDR=$CP_GRPC \
    FLAGFORGE_SYNC_TOKEN=$(cat "$DATA/sync-token") \
    FLAGFORGE_TRUSTED_KEYS=$DATA/signing-key.pub.pem \
    FLAGFORGE_ENVIRONMENTS='*' \
    FLAGFORGE_DATA_DIR=$DATA/evaluator-$n \
    FLAGFORGE_GRPC_ADDR=127.0.0.1:$grpc_port \
    FLAGFORGE_HTTP_ADDR=127.0.0.1:$http_port \
    FLAGFORGE_ADMIN_ADDR=127.0.0.1:$admin_port \
    "$BIN/flagforge-evaluator" >>"$DATA/evaluator-$n.log" 2>&1 &
  EVAL_PID=$!
  PIDS+=("$EVAL_PID")
  EVAL_HTTP=http://127.0.0.1:$http_port
  EVAL_GRPC=127.0.0.1:$grpc_port
  wait_ready "$EVAL_HTTP/readyz" "$EVAL_PID" "evaluator $n (log: data/evaluator-$n.log)"
  log "evaluator $n ready: gRPC $EVAL_GRPC, HTTP $EVAL_HTTP (log: data/evaluator-$n.log)"
}

evaluate_cmd() {
  printf "curl -s -X POST %s/v1/evaluate -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"flagKey\":\"new-ui\",\"context\":{\"targetingKey\":\"user-1\"}}'\n" "$1" "$SDK_KEY"
}

# Stay in the foreground until Ctrl-C or a process exits.
wait_any() {
  local status=0
  wait -n "${PIDS[@]}" || status=$?
  log "a process exited (status $status); stopping the others (logs in data/)"
  exit "$status"
}

if [[ ${1:-} == evaluator ]]; then
  n=${2:-1}
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "usage: scripts/run.sh evaluator N (N >= 1; 0 is make run's)"
  curl -fsS -o /dev/null --max-time 2 "$CP_URL/readyz" || die "the control plane is not running on $CP_HTTP: start make run first"
  [[ -x $BIN/flagforge-evaluator ]] || build
  SDK_KEY=$(cat "$(secret_file sdk-key)")
  start_evaluator "$n"
  echo
  echo "Evaluate on evaluator $n:"
  evaluate_cmd "$EVAL_HTTP"
  echo
  echo "Ctrl-C stops evaluator $n."
  wait_any
fi
[[ $# -eq 0 ]] || die "usage: scripts/run.sh [evaluator N]"

build
umask 077
mkdir -p "$DATA"
ADMIN_FILE=$(secret_file admin-token)
[[ -s $ADMIN_FILE ]] || { printf 'ffat_%s\n' "$(random 40)" >"$ADMIN_FILE"; log "generated an admin token into data/admin-token.secret"; }
ADMIN_TOKEN=$(cat "$ADMIN_FILE")

log "starting the control plane: gRPC $CP_GRPC, HTTP $CP_HTTP (log: data/controlplane.log)"
FLAGFORGE_DATABASE_URL=sqlite://$DATA/flagforge.db \
  FLAGFORGE_DATA_DIR=$DATA \
  FLAGFORGE_GRPC_ADDR=$CP_GRPC \
  FLAGFORGE_HTTP_ADDR=$CP_HTTP \
  FLAGFORGE_BOOTSTRAP_ORG=$ORG \
  FLAGFORGE_BOOTSTRAP_EMAIL=$ADMIN_EMAIL \
  FLAGFORGE_BOOTSTRAP_TOKEN=$ADMIN_TOKEN \
  "$BIN/flagforge-controlplane" serve >>"$DATA/controlplane.log" 2>&1 &
CP_PID=$!
PIDS+=("$CP_PID")
wait_ready "$CP_URL/readyz" "$CP_PID" "control plane (log: data/controlplane.log)"
log "control plane ready"

# First run only (each step once, so an interrupted first run completes later).
if ! admin GET "/v1/orgs/$ORG/projects/$PROJECT" >/dev/null 2>&1; then
  admin POST "/v1/orgs/$ORG/projects" "{\"project\":{\"key\":\"$PROJECT\",\"name\":\"Demo\"}}" >/dev/null
  log "created project $ORG/$PROJECT (development, staging, production)"
fi
for kind in server client; do
  name=sdk-key
  [[ $kind == client ]] && name=client-sdk-key
  f=$(secret_file "$name")
  [[ -s $f ]] && continue
  secret=$(admin POST "/v1/orgs/$ORG/projects/$PROJECT/environments/$ENVIRONMENT/sdk-keys" \
    "{\"name\":\"make run ($kind)\",\"kind\":\"SDK_KEY_KIND_${kind^^}\"}" | json_field secret)
  [[ -n $secret ]] || die "creating the $kind SDK key returned no secret"
  printf '%s\n' "$secret" >"$f"
  log "created a $kind SDK key for $ORG/$PROJECT/$ENVIRONMENT into data/$name.secret"
done
SDK_KEY=$(cat "$(secret_file sdk-key)")
CLIENT_SDK_KEY=$(cat "$(secret_file client-sdk-key)")

start_evaluator 0

cat <<EOF

FlagForge is running (embedded: SQLite + one evaluator over the gRPC sync stream).
  web console    $CP_URL/   (sign in with the admin token below)
  control plane  gRPC $CP_GRPC  HTTP $CP_URL    (admin API, OpenAPI at $CP_URL/openapi.json)
  evaluator 0    gRPC $EVAL_GRPC  HTTP $EVAL_HTTP
  organization "$ORG", project "$PROJECT"; data and logs in ./data

Admin token ($ADMIN_EMAIL, owner):  $ADMIN_TOKEN
Server SDK key ($ORG/$PROJECT/$ENVIRONMENT):  $SDK_KEY
Client SDK key ($ORG/$PROJECT/$ENVIRONMENT):  $CLIENT_SDK_KEY

Create flag "new-ui" and turn it on in production:
curl -sf -X POST $CP_URL/v1/orgs/$ORG/projects/$PROJECT/flags -H 'Authorization: Bearer $ADMIN_TOKEN' -H 'Content-Type: application/json' -d '{"flag":{"key":"new-ui","type":"FLAG_TYPE_BOOLEAN"}}' && echo && curl -s -X PUT $CP_URL/v1/orgs/$ORG/projects/$PROJECT/environments/$ENVIRONMENT/flags/new-ui -H 'Authorization: Bearer $ADMIN_TOKEN' -H 'Content-Type: application/json' -d '{"config":{"on":true,"offVariant":"off","defaultServe":{"variant":"on"}},"revision":1}'; echo

Evaluate it on the evaluator:
$(evaluate_cmd "$EVAL_HTTP")

A second evaluator beside it (gRPC 9101, HTTP 8091):  make run-evaluator N=1   (or scripts/run.sh evaluator 1)
Ctrl-C stops everything.
EOF
wait_any
