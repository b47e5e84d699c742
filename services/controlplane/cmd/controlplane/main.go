// Command flagforge-controlplane runs the FlagForge control plane.
//
//	flagforge-controlplane [serve]        serve the admin API (gRPC + REST)
//	flagforge-controlplane migrate        apply database migrations
//	flagforge-controlplane bootstrap --org acme --email admin@acme.test
//	                                      create the first organization, its owner
//	                                      and an owner token (printed)
//	flagforge-controlplane verify-audit   check every organization's audit chain
//	flagforge-controlplane recover-from-snapshots [--dry-run] [--environment ORG/PROJECT/ENV]
//	                                      after a database restore, rebuild each
//	                                      environment from its newest signed
//	                                      manifest snapshot (docs/operations.md)
//	flagforge-controlplane healthcheck    GET /healthz of the local process (exit 0
//	                                      when it answers 2xx): container HEALTHCHECK
//	flagforge-controlplane keys generate [-dir DIR]
//	                                      write a manifest signing key pair
//	flagforge-controlplane keys public [KEY]
//	                                      print the public key of a signing key
//	                                      (default: FLAGFORGE_SIGNING_KEY, else the
//	                                      one generated in the data directory)
//
// Configuration comes from FLAGFORGE_* environment variables and flags (see
// internal/config and docs/controlplane.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/flagforge/flagforge/pkg/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ec exitCode
	switch {
	case errors.As(err, &ec):
		os.Exit(int(ec)) // the command printed its report
	case err != nil:
		fmt.Fprintln(os.Stderr, "flagforge-controlplane:", err)
		os.Exit(1)
	}
}

// exitCode is an error that only sets the exit status (its report was printed).
type exitCode int

// Error implements error.
func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// run dispatches the subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "migrate":
		return migrate(ctx, args, stderr)
	case "bootstrap":
		return bootstrapCmd(ctx, args, stdout, stderr)
	case "verify-audit":
		return verifyAudit(ctx, args, stdout, stderr)
	case "recover-from-snapshots":
		return recoverFromSnapshots(ctx, args, stdout, stderr)
	case "keys":
		return keysCmd(ctx, args, stdout, stderr)
	case "healthcheck":
		return probe.Command(ctx, args, "127.0.0.1:8080", stderr)
	case "help", "-h", "--help":
		_, _ = fmt.Fprintln(stdout, "usage: flagforge-controlplane [serve|migrate|bootstrap|verify-audit|recover-from-snapshots|keys generate|keys public|healthcheck] [flags]")
		return nil
	default:
		return fmt.Errorf("unknown command %q (serve, migrate, bootstrap, verify-audit, recover-from-snapshots, keys, healthcheck)", cmd)
	}
}
