// Package eval is FlagForge's flag evaluation engine: it compiles a manifest
// (flagforge.manifest.v1.Manifest) into an immutable in-memory form and evaluates flags
// against a context. The evaluator service, the Go SDK and the control plane's
// validator all use it, so they decide identically.
//
// Semantics are those of design/EVALUATION.md, with the decisions recorded in
// docs/evaluation.md; the shared test vectors (testdata/vectors.json) pin them down.
//
// The contract:
//
//   - Compile prepares everything once (regexps, CIDRs, semvers, timestamps,
//     numbers, target and segment sets, case folding, dotted attribute paths). It
//     fails only when the manifest as a whole is unusable (nil, unknown bucketing
//     algorithm). A flag whose configuration is broken evaluates to the caller's
//     default with reason ERROR and error code PARSE_ERROR; every other flag works.
//   - A compiled *Manifest is immutable and safe for concurrent use. ApplyDelta returns
//     a new one and leaves the receiver untouched, so readers may keep using it; swap
//     the pointer atomically.
//   - Evaluate never panics and never fails: every failure is a Result with reason
//     ERROR and an error code. It does not allocate on the success paths of ordinary
//     flags (the context is built beforehand with NewContext or ContextFromStruct).
//   - Values handed out (Result.Value, Result.ProtoValue, Proto) are shared with the
//     compiled manifest: callers must not mutate them.
//   - ValidateFlag, ValidateSegment and ValidateManifest implement "Validation on save":
//     everything they refuse is either a PARSE_ERROR at evaluation time (a broken flag)
//     or, for references between flags and segments, a well-defined run-time outcome
//     (unknown segment: no match; unknown prerequisite: unmet; cycle: GENERAL).
//
// Decisions EVALUATION.md leaves open, taken here and recorded in docs/evaluation.md:
//
//   - Context limits count every value, containers included (a list of 3 strings is
//     4 values); a top-level attribute's value is at depth 1. Numbers must be finite
//     (NaN and ±Inf are refused like an over-limit context).
//   - A prerequisite is met only when it evaluates, for the same context, to a
//     listed variant with a reason other than ERROR, DISABLED and
//     PREREQUISITE_FAILED (a failed prerequisite chain propagates).
//   - Segments nested deeper than 32, a segment cycle met at run time, or more than
//     10,000 flag and segment evaluations in one call: GENERAL. A broken segment
//     (e.g. a bad regexp) met at run time: PARSE_ERROR.
//   - Partial semvers ("1", "1.2") take no pre-release or build suffix ("1.2-rc"
//     is invalid), as in golang.org/x/mod/semver. Numeric identifiers of any length
//     compare exactly.
//   - ip_in_cidr: an IPv4-mapped IPv6 range (::ffff:10.0.0.0/104) also matches the
//     IPv4 addresses it maps; an address zone (fe80::1%eth0) is ignored.
//   - A duplicate flag or segment key makes that key a PARSE_ERROR.
//   - Clause values that cannot apply to their operator (a non-numeric string for
//     lt, an object for in, …) make the flag a PARSE_ERROR, like a bad regexp.
package eval
