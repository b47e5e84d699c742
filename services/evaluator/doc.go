// Package evaluator is the FlagForge evaluator service: stateless, it loads the
// signed manifests of the environments it serves, verifies them, and answers
// evaluations over gRPC and REST from memory (see design/ARCHITECTURE.md).
//
// Status: the service itself is the subject of an open issue; this module holds its
// place in the workspace so the build, lint and test targets cover it from the start.
package evaluator
