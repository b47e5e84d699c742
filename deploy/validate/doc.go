// Package validate checks everything under deploy/ offline, without a cluster, a
// Docker engine or the network: every Kubernetes manifest decodes strictly into
// the typed Kubernetes API objects (an unknown or misspelt field fails), the
// kustomize overlays build through the kustomize Go API and their output obeys
// our deployment rules (non-root, read-only root filesystem, probes on /healthz
// and /readyz, a grace period that fits the drain, references that resolve), the
// compose file loads with the compose-spec loader, the alert rules parse with
// Prometheus' rule parser and query only metrics our code exports, and the
// Dockerfiles build static binaries. One test needs a server: the backup
// CronJob's script runs against the test PostgreSQL
// (FLAGFORGE_TEST_POSTGRES_URL) and its dump is restored.
//
// It is a module of its own (outside go.work) so that its heavy dependencies
// (k8s.io/api, kustomize, compose-go, prometheus) never reach the services.
// Run it with `make test-deploy` (part of `make test`).
package validate
