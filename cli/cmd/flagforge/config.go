package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
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
	switch kind + " " + action {
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
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+*token)
	flags, segments := adminv1.NewFlagServiceClient(conn), adminv1.NewSegmentServiceClient(conn)
	var (
		saved   proto.Message
		cr      *adminv1.ChangeRequest
		impact  *adminv1.Impact
		wouldCR bool
	)
	switch kind + " " + action {
	case "config set":
		cfg := &manifestv1.FlagConfig{}
		if err := decodeArg("--config", *config, cfg); err != nil {
			return err
		}
		rev := *revision
		if rev == 0 {
			cur, err := flags.GetFlagConfig(ctx, &adminv1.GetFlagConfigRequest{Org: *org, Project: *project, Environment: *env, Flag: *flagKey})
			if err != nil {
				return err
			}
			rev = cur.GetConfig().GetRevision()
		}
		r, err := flags.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: *org, Project: *project, Environment: *env, Flag: *flagKey,
			Config: cfg, Revision: rev, Comment: *comment, DryRun: *dryRun})
		if err != nil {
			return err
		}
		saved, cr, impact, wouldCR = r.GetConfig(), r.GetChangeRequest(), r.GetImpact(), r.GetWouldOpenChangeRequest()
	case "config patch":
		var m map[string]any
		if err := json.Unmarshal([]byte(*patch), &m); err != nil || *patch == "" {
			return fmt.Errorf("--patch must be a JSON object: %v", err)
		}
		st, err := structpb.NewStruct(m)
		if err != nil {
			return fmt.Errorf("--patch: %w", err)
		}
		r, err := flags.PatchFlagConfig(ctx, &adminv1.PatchFlagConfigRequest{Org: *org, Project: *project, Environment: *env, Flag: *flagKey,
			Patch: st, Revision: *revision, Comment: *comment, DryRun: *dryRun})
		if err != nil {
			return err
		}
		saved, cr, impact, wouldCR = r.GetConfig(), r.GetChangeRequest(), r.GetImpact(), r.GetWouldOpenChangeRequest()
	case "segment set":
		sg := &manifestv1.Segment{}
		if err := decodeArg("--definition", *definition, sg); err != nil {
			return err
		}
		rev := *revision
		if rev == 0 {
			cur, err := segments.GetSegment(ctx, &adminv1.GetSegmentRequest{Org: *org, Project: *project, Environment: *env, Segment: *segment})
			if err != nil {
				return err
			}
			rev = cur.GetSegment().GetRevision()
		}
		r, err := segments.UpdateSegment(ctx, &adminv1.UpdateSegmentRequest{Org: *org, Project: *project, Environment: *env, Segment: *segment,
			Definition: sg, Revision: rev, Comment: *comment, DryRun: *dryRun})
		if err != nil {
			return err
		}
		saved, cr, impact, wouldCR = r.GetSegment(), r.GetChangeRequest(), r.GetImpact(), r.GetWouldOpenChangeRequest()
	}
	return renderWrite(out, *env, *dryRun, saved, cr, impact, wouldCR)
}

// decodeArg reads a JSON message from an argument (or @file) as the REST API
// takes it.
func decodeArg(name, arg string, m proto.Message) error {
	if arg == "" {
		return fmt.Errorf("%s is required", name)
	}
	b := []byte(arg)
	if path, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if err := strictjson.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func renderWrite(out io.Writer, env string, dryRun bool, saved proto.Message, cr *adminv1.ChangeRequest, impact *adminv1.Impact, wouldCR bool) error {
	var b strings.Builder
	switch {
	case cr != nil:
		fmt.Fprintf(&b, "approvals required: change request %s opened (content digest %s)\n", cr.GetId(), cr.GetContentDigest())
	case dryRun && wouldCR:
		b.WriteString("dry run: valid; nothing written. Environment " + env + " requires approvals: the write would open a change request with:\n")
	case dryRun:
		b.WriteString("dry run: valid; nothing written. The write would save:\n")
	default:
		b.WriteString("saved:\n")
	}
	if saved != nil && saved.ProtoReflect().IsValid() && cr == nil {
		js, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(saved)
		if err != nil {
			return err
		}
		b.Write(js)
		b.WriteString("\n")
	}
	if impact != nil {
		b.WriteString(remote.RenderImpact([]remote.EnvImpact{{Environment: env, Impact: impact}}))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
