// Package sdk is FlagForge's Go server SDK: it keeps the signed manifest of one
// environment in memory and evaluates flags locally with the shared engine
// (pkg/eval), so the Go SDK and the evaluator decide identically.
//
// A Client is created with New from a Config naming the SDK key, the evaluator's
// gRPC address (and its HTTP base URL for the polling fallback) and the trusted
// manifest signing keys. New never blocks and does no network I/O: the client
// syncs in the background, and until the first verified manifest every call
// answers the caller's default with reason ERROR and error code
// PROVIDER_NOT_READY. WaitReady waits for the first manifest when a caller wants to.
//
// The contract:
//
//   - Evaluation never does I/O and never blocks: it loads an atomic pointer to the
//     compiled manifest and runs the engine. A static flag costs well under 200 ns
//     and no allocation when the context is built once with NewContext.
//   - Every manifest is verified against Config.TrustedKeys before it is used:
//     snapshots with manifest.Verifier.Next (same environment, never older), deltas
//     with Verifier.Delta, applied only when they start at the version held (digests
//     checked by manifest.Apply); otherwise the client resubscribes from its version.
//     A refused manifest leaves the last good one serving.
//   - Sync: StreamManifest over gRPC, resuming from the version held; on failure,
//     reconnects with exponential backoff and full jitter (Backoff), at the stream
//     level and at the TCP level (the SDK's own dialer paces the gRPC channel's
//     reconnections, so a fleet spreads over several seconds); after
//     StreamFailuresBeforePolling consecutive failures it long-polls GET /v1/manifest
//     (ETag, ?wait=) for PollingPeriod, then tries streaming again. An SDK key the
//     evaluator refuses (UNAUTHENTICATED, PERMISSION_DENIED, HTTP 401/403) is fatal:
//     the client stops syncing, Status reports StateError and an EventError is sent,
//     and it keeps answering from the last manifest it holds (or the defaults).
//   - Offline start: Config.Bootstrap / BootstrapFile hold a SignedManifest (as served
//     by GET /v1/manifest or downloaded from the control plane); it is verified like
//     any other.
//   - Evaluation counts are reported with ReportEvaluations in the background,
//     once per UsageInterval, in bounded memory; what cannot be kept is dropped and
//     counted (Status.UsageDropped), never blocking an evaluation.
//   - Change notifications (OnChange, OnEvent) run on one dispatcher goroutine of the
//     client, never on the caller's and never while a lock is held.
//
// A Client is safe for concurrent use. Close stops every goroutine it started.
package sdk
