# FlagForge build entry points. Every target works from a clean clone; `make tools`
# builds the pinned code generators and linters (tools/go.mod) into ./bin.

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
# Module-path patterns: `go test ./...` does not work from a go.work-only root.
MODULES  := pkg services/controlplane services/evaluator cli
PACKAGES := $(foreach m,$(MODULES),github.com/flagforge/flagforge/$(m)/...)
TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc \
         $(BIN)/protoc-gen-grpc-gateway $(BIN)/protoc-gen-openapiv2 $(BIN)/golangci-lint

.PHONY: all tools generate generate-check lint breaking build test test-short test-js test-deploy images chaos bench bench-propagation bench-coldstart bench-unary bench-streams fuzz services run run-evaluator clean web test-web bench-web

all: generate build test

## tools: build the pinned tools (buf, protoc plugins, golangci-lint) into ./bin
tools: $(TOOLS)
$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && GOWORK=off GOBIN=$(BIN) $(GO) install tool
	@touch $(TOOLS)

## generate: regenerate Go, gRPC, gateway code and the OpenAPI documents from proto/
generate: tools
	rm -rf pkg/gen/flagforge && rm -f pkg/openapi/*.swagger.json
	$(BIN)/buf generate
	$(BIN)/buf generate --template buf.gen.admin.yaml --path proto/flagforge/admin
	$(BIN)/buf generate --template buf.gen.evaluation.yaml --path proto/flagforge/evaluation
	bash scripts/ensure-web.sh
	rm -rf web/src/gen
	$(BIN)/buf generate --template buf.gen.web.yaml --path proto/flagforge/admin --path proto/flagforge/manifest

## generate-check: fail when the committed generated code differs from a fresh generation
generate-check: generate
	@git diff --exit-code -- pkg/gen pkg/openapi web/src/gen || { echo "generated code is stale: run make generate and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/gen pkg/openapi web/src/gen)" || { git status --porcelain -- pkg/gen pkg/openapi web/src/gen; echo "untracked generated files: run make generate and commit" >&2; exit 1; }

## lint: buf lint (STANDARD), go vet and golangci-lint on every module
lint: tools
	$(BIN)/buf lint
	$(GO) vet $(PACKAGES)
	@for m in $(MODULES); do echo "golangci-lint $$m"; (cd $$m && $(BIN)/golangci-lint run --allow-parallel-runners ./...) || exit 1; done
	cd deploy/validate && GOWORK=off $(GO) vet ./... && GOWORK=off $(BIN)/golangci-lint run --allow-parallel-runners ./...

## breaking: buf breaking against main (no-op on main itself)
breaking: tools
	$(BIN)/buf breaking --against '.git#branch=main'

## web: build the console (web/) into the control plane's embedded assets
web:
	bash scripts/ensure-web.sh
	cd web && npm run build
	@touch services/controlplane/internal/console/dist/.keep

## build: compile every module and the service binaries (console embedded) into ./bin
build: web
	$(GO) build $(PACKAGES)
	@for d in services/*/cmd/*; do [ -d "$$d" ] || continue; echo "build $$d"; \
	  $(GO) build -o $(BIN)/flagforge-$$(basename $$d) ./$$d || exit 1; done
	$(GO) build -o $(BIN)/flagforge ./cli/cmd/flagforge

## services: make sure PostgreSQL and Redis are running (installs them when missing), and
## that the prometheus binary the guardrail tests start is installed
services:
	bash scripts/ensure-services.sh
	bash scripts/ensure-prometheus.sh

## test: every module's tests with the race detector (needs PostgreSQL and Redis), then the
## browser SDK's and the web console's browser tests; deploy/ is validated offline first
test: services test-deploy
	$(GO) test -race -count=1 -timeout 30m $(PACKAGES)
	$(MAKE) test-js
	$(MAKE) test-web

## test-js: the browser SDK (sdk/js): npm ci (when the lockfile changed), type check, size budget
## (core <= 3 kB min+gzip), build, vitest unit tests, then end-to-end tests in headless Chromium
## (scripts/ensure-browser.sh) against a real control plane and evaluator, including OFREP
## conformance with OpenFeature's own providers
test-js:
	bash scripts/ensure-browser.sh >/dev/null
	cd sdk/js && if [[ ! -f node_modules/.flagforge-installed || package-lock.json -nt node_modules/.flagforge-installed ]]; then \
	  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund && touch node_modules/.flagforge-installed; fi
	cd sdk/js && npm run --silent typecheck && npm run --silent size && npm run --silent build && npm test && npm run test:e2e

## test-deploy: validate deploy/ offline (manifests, kustomize, compose, alerts, Dockerfiles);
## its own module outside go.work, so its dependencies stay out of the services
test-deploy:
	cd deploy/validate && GOWORK=off $(GO) test -count=1 -timeout 10m ./...

## images: the container images (needs a Docker engine with BuildKit); IMAGE_REPO, IMAGE_TAG
IMAGE_REPO ?= flagforge
IMAGE_TAG  ?= dev
images:
	@command -v docker >/dev/null 2>&1 || { echo "make images: no docker command on this machine; install Docker (with BuildKit) to build images. deploy/ is still validated offline by make test-deploy." >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make images: the Docker engine is not reachable (docker info failed); start it, or build elsewhere." >&2; exit 1; }
	@for svc in controlplane evaluator; do \
	  echo "docker build $(IMAGE_REPO)/$$svc:$(IMAGE_TAG)"; \
	  DOCKER_BUILDKIT=1 docker build -f deploy/docker/$$svc.Dockerfile -t $(IMAGE_REPO)/$$svc:$(IMAGE_TAG) . || exit 1; \
	done

## chaos: the fault tests against real processes: hostile bodies, slow clients, busy
## ports, the PostgreSQL guide, frozen stream clients, a fleet reconnecting to a
## restarted evaluator (the last two are slow, ~3 min), a rolling restart of three evaluators
## under load (docs/operations.md). Figures: docs/reliability.md. Then 10,000 mixed streams
## on one evaluator (make bench-streams' code path, ~2 min): fails when memory per stream
## exceeds docs/benchmarks.md's figure by more than 25% or goroutines leak
CHAOS_TESTS := TestHostile|TestSlowClients|TestABusyPort|TestRedisClientLogs|TestThePostgreSQLSetUp|TestChaos|TestRollingRestart
chaos: services
	FLAGFORGE_CHAOS=1 $(GO) test -count=1 -timeout 20m -v -run '$(CHAOS_TESTS)' github.com/flagforge/flagforge/services/evaluator/platform/...
	FLAGFORGE_CHAOS=1 $(GO) test -count=1 -timeout 10m -v -run TestChaosStreams github.com/flagforge/flagforge/services/evaluator/bench/streamload

## test-web: the console's Playwright tests (Debian Chromium) against a real control
## plane and evaluator, the bundle-size budget, and the accessibility checks
test-web: build
	bash scripts/ensure-browser.sh >/dev/null
	$(GO) build -o $(BIN)/flagforge-testidp ./services/controlplane/internal/oidclogin/testidp/flagforge-testidp
	cd web && npm run test:e2e

## bench-web: time to interactive of the flags list with 1,000 flags (Chromium)
bench-web: build
	bash scripts/ensure-browser.sh >/dev/null
	cd web && node e2e/bench/flags-list.mjs

## test-short: quick tests without the race detector
test-short:
	$(GO) test -short -count=1 $(PACKAGES)

## bench: Go benchmarks and the evaluator load harness (figures go to docs/benchmarks.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 5 github.com/flagforge/flagforge/pkg/eval/...
	$(GO) test -run '^$$' -bench . -benchmem github.com/flagforge/flagforge/services/evaluator/...
	bash bench/evaluator-load.sh

## bench-coldstart: evaluator start with 10,000 flags x 3 environments, from the local
## copies (< 500 ms) and from Redis (< 1 s); cpu-ms/op is the figure (docs/benchmarks.md)
bench-coldstart:
	$(GO) test -run '^$$' -bench 'ColdStart' -benchmem -benchtime 3x \
	  github.com/flagforge/flagforge/services/evaluator/internal/holder github.com/flagforge/flagforge/services/evaluator/internal/source

## bench-unary: the evaluator's hot paths in process (unary REST, OFREP, gRPC, bulk):
## allocations and cpu-µs/op (docs/benchmarks.md); bench/evaluator-load.sh serves them
bench-unary:
	$(GO) test -run '^$$' -bench 'EvaluateHTTP|OFREPFlag|EvaluateGRPC|BareGRPC|Bulk' -benchmem -count 3 -benchtime 3000x \
	  github.com/flagforge/flagforge/services/evaluator/internal/server

## bench-propagation: what one change costs in an environment of FLAGS flags (comma list),
## on SQLite + sync stream and on PostgreSQL + Redis: change -> stream client p50/max, CPU
## per change of the control plane and the evaluator, full manifest size
## (docs/benchmarks.md, "Propagation"). STACKS=embedded,postgres CHANGES=30
FLAGS   ?= 100,1000,10000
STACKS  ?= embedded,postgres
CHANGES ?= 30
bench-propagation: services
	FLAGFORGE_BENCH_PROPAGATION=$(FLAGS) FLAGFORGE_BENCH_STACKS=$(STACKS) FLAGFORGE_BENCH_CHANGES=$(CHANGES) \
	  $(GO) test -count=1 -timeout 60m -run '^TestPropagation$$' -v github.com/flagforge/flagforge/services/evaluator/platform

## bench-streams: N mixed streams (SSE, NDJSON, gRPC) on one evaluator, held 2 min with
## heartbeats, then 5 flag changes that every stream must receive; memory, goroutines, idle
## CPU, accept time, change-to-receipt latency (make bench-streams N=100000; ARGS=-hold=30s).
## Figures: docs/benchmarks.md "Streaming connections"
bench-streams:
	$(GO) run ./services/evaluator/bench/streams -n $(if $(filter command line,$(origin N)),$(N),10000) $(ARGS)

## fuzz: fuzz compile+evaluate and the evaluator's request decoders (FUZZTIME=5m make fuzz)
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzEvaluate -fuzztime $(FUZZTIME) github.com/flagforge/flagforge/pkg/eval
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvaluateJSON -fuzztime $(FUZZTIME) github.com/flagforge/flagforge/services/evaluator/internal/reqcodec
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvaluateProto -fuzztime $(FUZZTIME) github.com/flagforge/flagforge/services/evaluator/internal/reqcodec

## run: the embedded platform (control plane on SQLite + evaluator + the web console
## at http://127.0.0.1:8080/), data in ./data
run: web
	bash scripts/run.sh

## run-evaluator: one more evaluator beside `make run` (N=1: gRPC 9101, HTTP 8091)
N ?= 1
run-evaluator:
	bash scripts/run.sh evaluator $(N)

clean:
	rm -rf $(BIN) data
