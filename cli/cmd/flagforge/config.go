package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"time"

	"github.com/flagforge/flagforge/cli/write"
)

const configUsage = `usage: flagforge config <set|patch> --org O --project P --env E --flag F (--config JSON|@file | --patch JSON) [--dry-run] [--comment "..."],
flagforge segment set --org O --project P --env E --segment S --definition JSON|@file [--dry-run] [--comment "..."]`

// configCmd runs `flagforge config set|patch` (a flag's configuration in one
// environment) and `flagforge segment set`. With --dry-run the control plane
// validates the write as it would make it and answers the result and its impact
// preview over the environment's seen contexts, writing nothing.
func configCmd(ctx context.Context, kind string, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(configUsage)
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet(kind+" "+action, flag.ContinueOnError)
	server := fs.String("server", envOr("FLAGFORGE_SERVER", "127.0.0.1:9090"), "control plane gRPC address")
	token := fs.String("token", os.Getenv("FLAGFORGE_TOKEN"), "API token (FLAGFORGE_TOKEN)")
	org := fs.String("org", os.Getenv("FLAGFORGE_ORG"), "organization")
	project := fs.String("project", os.Getenv("FLAGFORGE_PROJECT"), "project")
	env := fs.String("env", "", "environment")
	flagKey := fs.String("flag", "", "config: the flag")
	segment := fs.String("segment", "", "segment: the segment")
	config := fs.String("config", "", "config set: the whole configuration as JSON (or @file)")
	patch := fs.String("patch", "", "config patch: a JSON merge patch of the configuration, e.g. '{\"on\": true}'")
	definition := fs.String("definition", "", "segment set: the segment as JSON (or @file)")
	revision := fs.Int64("revision", 0, "the revision the change is based on (0: the current one)")
	dryRun := fs.Bool("dry-run", false, "validate and preview the impact; write nothing")
	comment := fs.String("comment", "", "recorded in the audit log (and the change request)")
	useTLS := fs.Bool("tls", os.Getenv("FLAGFORGE_TLS") == "true", "connect over TLS (system roots)")
	caFile := fs.String("ca", os.Getenv("FLAGFORGE_CA"), "connect over TLS trusting this CA certificate (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *org == "" || *project == "" || *env == "" || *token == "" {
		return errors.New("--org, --project, --env and --token (or FLAGFORGE_TOKEN) are required")
	}
	cmd := kind + " " + action
	switch cmd {
	case "config set", "config patch":
		if *flagKey == "" {
			return errors.New("--flag is required")
		}
	case "segment set":
		if *segment == "" {
			return errors.New("--segment is required")
		}
	default:
		return errors.New(configUsage)
	}
	conn, err := dial(*server, *useTLS, *caFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := write.New(conn, *token, *org, *project, *env)
	o := write.Options{Revision: *revision, Comment: *comment, DryRun: *dryRun}
	var r *write.Result
	switch cmd {
	case "config set":
		r, err = c.SetConfig(ctx, *flagKey, *config, o)
	case "config patch":
		r, err = c.PatchConfig(ctx, *flagKey, *patch, o)
	default:
		r, err = c.SetSegment(ctx, *segment, *definition, o)
	}
	if err != nil {
		return err
	}
	return write.Render(out, r)
}
