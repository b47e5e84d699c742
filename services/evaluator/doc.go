// Package evaluator is the FlagForge evaluator service: stateless, it loads the
// signed manifests of the environments it serves, verifies them, and answers
// evaluations over gRPC and REST from memory (see design/ARCHITECTURE.md and
// docs/evaluator.md).
//
// The binary is cmd/evaluator; the parts live under internal/: config (settings and
// validation), holder (verified manifests, swapped atomically, local copies),
// source (Redis and the control plane's sync stream), auth (SDK keys), engine (the
// one file that uses pkg/eval), server (gRPC, REST gateway, health, metrics) and app
// (assembly and graceful shutdown).
package evaluator
