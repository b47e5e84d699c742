package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/flagforge/flagforge/cli/release"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

const releaseUsage = `usage: flagforge release <create|list|get|start|pause|resume|rollback|cancel> --org O --project P --env E [flags]`

// releaseCmd runs `flagforge release <action>`: release plans of one environment.
func releaseCmd(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(releaseUsage)
	}
	action, args := args[0], args[1:]
	fs := flag.NewFlagSet("release "+action, flag.ContinueOnError)
	server := fs.String("server", envOr("FLAGFORGE_SERVER", "127.0.0.1:9090"), "control plane gRPC address")
	token := fs.String("token", os.Getenv("FLAGFORGE_TOKEN"), "API token (FLAGFORGE_TOKEN)")
	org := fs.String("org", os.Getenv("FLAGFORGE_ORG"), "organization")
	project := fs.String("project", os.Getenv("FLAGFORGE_PROJECT"), "project")
	env := fs.String("env", "", "environment")
	id := fs.String("id", "", "the plan (get, start, pause, resume, rollback, cancel)")
	flagKey := fs.String("flag", "", "create: the flag; list: only its plans")
	steps := fs.String("steps", "", "create: steps as percent/hold, e.g. 1%/1h,5%/4h,25%/1d,100%")
	variant := fs.String("variant", "on", "create: the variant the steps roll out")
	rest := fs.String("rest", "off", "create: the variant the other contexts get")
	guard := fs.String("guardrail", "", "create: a guardrail's name (with --promql or --sdk-errors, --threshold, --window)")
	promql := fs.String("promql", "", "create: the guardrail's PromQL ($window is replaced by --window)")
	sdkErrors := fs.String("sdk-errors", "", "create: guard on the errors SDKs report for this variant ('*': every variant) instead of --promql")
	measure := fs.String("measure", "ratio", "create, with --sdk-errors: ratio (errors per evaluation) or count")
	minEvals := fs.Int64("min-evaluations", 0, "create, with --sdk-errors: fewer evaluations in the window hold the check")
	threshold := fs.Float64("threshold", 0, "create: a value above this is a breach")
	window := fs.String("window", "5m", "create: the guardrail's window")
	onBreach := fs.String("on-breach", "last-safe-step", "create: last-safe-step or off")
	desc := fs.String("description", "", "create: why")
	comment := fs.String("comment", "", "start, pause, resume, rollback, cancel: recorded in the audit log")
	useTLS := fs.Bool("tls", os.Getenv("FLAGFORGE_TLS") == "true", "connect over TLS (system roots)")
	caFile := fs.String("ca", os.Getenv("FLAGFORGE_CA"), "connect over TLS trusting this CA certificate (PEM)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *org == "" || *project == "" || *env == "" || *token == "" {
		return errors.New("--org, --project, --env and --token (or FLAGFORGE_TOKEN) are required")
	}
	var req *adminv1.CreateReleasePlanRequest
	switch action {
	case "create":
		if *flagKey == "" {
			return errors.New("--flag is required")
		}
		st, err := release.ParseSteps(*steps, *variant, *rest)
		if err != nil {
			return err
		}
		req = &adminv1.CreateReleasePlanRequest{Flag: *flagKey, Steps: st, Description: *desc}
		switch *onBreach {
		case "last-safe-step":
			req.BreachAction = adminv1.BreachAction_BREACH_ACTION_LAST_SAFE_STEP
		case "off":
			req.BreachAction = adminv1.BreachAction_BREACH_ACTION_OFF
		default:
			return fmt.Errorf("--on-breach %q: last-safe-step or off", *onBreach)
		}
		if *guard != "" {
			w, err := release.ParseDuration(*window)
			if err != nil {
				return fmt.Errorf("--window: %w", err)
			}
			g := &adminv1.Guardrail{Name: *guard, Threshold: *threshold, Window: durationpb.New(w)}
			switch {
			case *promql != "" && *sdkErrors != "":
				return errors.New("--promql and --sdk-errors: a guardrail has one check")
			case *sdkErrors != "":
				chk, err := release.SDKErrorsCheck(*sdkErrors, *measure, *minEvals)
				if err != nil {
					return err
				}
				g.Check = &adminv1.Guardrail_SdkErrors{SdkErrors: chk}
			default:
				g.Check = &adminv1.Guardrail_Promql{Promql: &adminv1.PromQLCheck{Query: *promql}}
			}
			req.Guardrails = []*adminv1.Guardrail{g}
		}
	case "list":
	case "get", "start", "pause", "resume", "rollback", "cancel":
		if *id == "" {
			return errors.New("--id is required")
		}
	default:
		return errors.New(releaseUsage)
	}
	conn, err := dial(*server, *useTLS, *caFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := release.New(conn, *token, *org, *project, *env)
	switch action {
	case "create":
		p, cr, err := c.Create(ctx, req.GetFlag(), req.GetSteps(), req.GetGuardrails(), req.GetBreachAction(), req.GetDescription())
		if err != nil {
			return err
		}
		if err := release.Render(out, p); err != nil {
			return err
		}
		if cr != nil {
			_, err = fmt.Fprintf(out, "approvals required: change request %s awaits approval (content digest %s)\n", cr.GetId(), cr.GetContentDigest())
		}
		return err
	case "list":
		ps, err := c.List(ctx, *flagKey)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if err := release.Render(out, p); err != nil {
				return err
			}
		}
		return nil
	case "get":
		p, err := c.Get(ctx, *id)
		if err != nil {
			return err
		}
		return release.Render(out, p)
	default:
		p, err := c.Act(ctx, action, *id, *comment)
		if err != nil {
			return err
		}
		return release.Render(out, p)
	}
}
