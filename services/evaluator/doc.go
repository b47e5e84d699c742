// Package evaluator is the FlagForge evaluator service: stateless, it loads the
// signed manifests of the environments it serves, verifies them, and answers
// evaluations over gRPC and REST from memory (see design/ARCHITECTURE.md and
// docs/evaluator.md).
//
// The binary is cmd/evaluator; the parts live under internal/: config (settings and
// validation), holder (verified manifests, swapped atomically, local copies),
// source (Redis and the control plane's sync stream), auth (SDK keys), engine (the
// one file that uses pkg/eval), broadcast (stream fan-out: snapshots, deltas,
// heartbeats, slow-consumer drops, revocation, drain), limit (per-key rate limits),
// usage (evaluation counts reported to the control plane), server (gRPC, REST,
// NDJSON stream, SSE, manifest polling, CORS, health, metrics), telemetry (tracing,
// pprof) and app (assembly and graceful shutdown). bench/setup prepares the load
// harness (bench/evaluator-load.sh at the repository root).
package evaluator
