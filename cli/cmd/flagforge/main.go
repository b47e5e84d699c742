// Command flagforge manages FlagForge flags as code: export a project to a file,
// plan and apply a file through the admin API, validate a file offline with the
// evaluation engine, and evaluate a flag against a file or an evaluator.
//
//	flagforge list     --org acme --project web [--q text] [--tag t,...] [--owner o] [--type boolean] [--status stale] [--env production] [--on true|false] [--sort key|name|created|updated] [--desc] [--archived]
//	flagforge export   --org acme --project web [--env production] [--format yaml|json] [-o flags.yaml]
//	flagforge plan     --org acme --project web -f flags.yaml [--impact=false]
//	flagforge contexts --org acme --project web --env production [--limit 20]
//	flagforge private-attributes --org acme --project web [--set email,address.street]
//	flagforge apply    --org acme --project web -f flags.yaml [--comment "..."]
//	flagforge bulk     --org acme --project web (--add-tag t | --off-in staging) [--flags a,b | list filters] [--dry-run] [--comment "..."]
//	flagforge validate -f flags.yaml
//	flagforge evaluate -f flags.yaml --env production --flag new-ui --context '{"targetingKey":"u1"}'
//	flagforge evaluate --evaluator http://127.0.0.1:8081 --sdk-key ff_srv_... --flag new-ui --context '{...}'
//	flagforge permissions --org acme [--project web] [--env staging]
//	flagforge roles list   --org acme [--member bob@acme.test]
//	flagforge roles grant  --org acme --member bob@acme.test --role editor [--project web] [--env staging]
//	flagforge roles revoke --org acme --member bob@acme.test [--project web] [--env staging]
//	flagforge webhooks deliveries --org acme --project web --id <webhook id>
//	flagforge webhooks test       --org acme --project web --id <webhook id>
//	flagforge webhooks redeliver  --org acme --project web --id <webhook id> --delivery <delivery id>
//	flagforge release create --org acme --project web --env production --flag checkout --steps 1%/1h,5%/4h,25%/1d,100% \
//	    [--guardrail errors --promql 'sum(rate(http_errors_total[$window]))' --threshold 0.5 --window 5m] [--on-breach off]
//	    [--guardrail sdk-errors --sdk-errors on --measure ratio --min-evaluations 100 --threshold 0.05 --window 5m]
//	flagforge release list|get|start|pause|resume|rollback|cancel --org acme --project web --env production [--id <plan>] [--comment "..."]
//	flagforge config set   --org acme --project web --env production --flag checkout --config @checkout.json [--dry-run] [--comment "..."]
//	flagforge config patch --org acme --project web --env production --flag checkout --patch '{"on": true}' [--dry-run]
//	flagforge segment set  --org acme --project web --env production --segment beta --definition @beta.json [--dry-run]
//	flagforge history  --org acme --project web --env production (--flag new-ui | --segment beta) [--diff 2..3]
//	flagforge revert   --org acme --project web --env production (--flag new-ui | --segment beta) --revision 2 [--comment "..."]
//	flagforge rollback --org acme --project web --env production (--version 12 | --time 2026-11-28T07:00:00Z) [--dry-run] [--comment "..."]
//
// The control plane's gRPC address and API token come from --server and --token,
// or FLAGFORGE_SERVER and FLAGFORGE_TOKEN; --tls (system roots) or --ca <pem>
// connect over TLS, plaintext otherwise (the local default).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/cli/flagsfile"
	"github.com/flagforge/flagforge/cli/history"
	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "flagforge:", err)
		stop()
		os.Exit(1)
	}
}

const usage = `usage: flagforge <list|export|plan|apply|bulk|validate|evaluate|contexts|private-attributes|permissions|history|revert|rollback> [flags],
flagforge roles <list|grant|revoke> [flags], flagforge webhooks <deliveries|test|redeliver> [flags],
flagforge release <create|list|get|start|pause|resume|rollback|cancel> [flags], flagforge config <set|patch> [flags],
flagforge segment set [flags]; flagforge <command> -h for its flags`

// run executes one command; out receives its output.
func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	cmd, args := args[0], args[1:]
	if cmd == "release" {
		return releaseCmd(ctx, args, out)
	}
	if cmd == "config" || cmd == "segment" {
		return configCmd(ctx, cmd, args, out)
	}
	if (cmd == "roles" || cmd == "webhooks") && len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = cmd+" "+args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	server := fs.String("server", envOr("FLAGFORGE_SERVER", "127.0.0.1:9090"), "control plane gRPC address")
	token := fs.String("token", os.Getenv("FLAGFORGE_TOKEN"), "API token (FLAGFORGE_TOKEN)")
	org := fs.String("org", os.Getenv("FLAGFORGE_ORG"), "organization")
	project := fs.String("project", os.Getenv("FLAGFORGE_PROJECT"), "project")
	file := fs.String("f", "", "flags file (YAML or JSON)")
	env := fs.String("env", "", "environment (export: only this one; evaluate: required with -f)")
	format := fs.String("format", "yaml", "export format: yaml or json")
	output := fs.String("o", "", "export: write to this file instead of stdout")
	comment := fs.String("comment", "flagforge apply", "apply: comment recorded in the audit log and change requests")
	flagKey := fs.String("flag", "", "evaluate: the flag key")
	evalCtx := fs.String("context", "{}", "evaluate: the context as a JSON object")
	evaluator := fs.String("evaluator", "", "evaluate: an evaluator's HTTP address instead of -f")
	sdkKey := fs.String("sdk-key", os.Getenv("FLAGFORGE_SDK_KEY"), "evaluate: SDK key for --evaluator")
	useTLS := fs.Bool("tls", os.Getenv("FLAGFORGE_TLS") == "true", "connect to the control plane over TLS (system roots)")
	caFile := fs.String("ca", os.Getenv("FLAGFORGE_CA"), "connect over TLS trusting this CA certificate (PEM)")
	withImpact := fs.Bool("impact", true, "plan: preview each changed configuration's effect on the environment's seen contexts")
	limit := fs.Int("limit", 20, "contexts: how many seen contexts to print; history: how many revisions")
	setPrivate := fs.String("set", "", "private-attributes: replace the list with these comma-separated names (\"-\" for none)")
	member := fs.String("member", "", "roles: the member (id or email)")
	role := fs.String("role", "", "roles grant: owner, admin, editor or viewer")
	hookID := fs.String("id", "", "webhooks: the webhook's id")
	delivery := fs.String("delivery", "", "webhooks redeliver: the delivery's id")
	lq := fs.String("q", "", "list: free text (every word in the key, name, description or a tag)")
	lTags := fs.String("tag", "", "list: only flags with every one of these tags (comma separated)")
	lOwner := fs.String("owner", "", "list: only flags whose owner contains this")
	lType := fs.String("type", "", "list: boolean, string, number or json")
	lStatus := fs.String("status", "", "list: active, inactive, stale, archived or new (in --env, else in any environment)")
	lOn := fs.String("on", "", "list: true or false: only flags on (off) in --env")
	lSort := fs.String("sort", "", "list: key, name, created or updated")
	lDesc := fs.Bool("desc", false, "list: reverse the order")
	lArchived := fs.Bool("archived", false, "list: include archived flags")
	segment := fs.String("segment", "", "history, revert: the segment (instead of --flag)")
	diffRange := fs.String("diff", "", "history: diff two revisions, FROM..TO (TO empty: the latest)")
	revision := fs.Int64("revision", 0, "revert: the revision to restore")
	version := fs.Uint64("version", 0, "rollback: the manifest version to restore")
	at := fs.String("time", "", "rollback: the time to restore (RFC 3339)")
	dryRun := fs.Bool("dry-run", false, "rollback, bulk: only show what would change")
	addTag := fs.String("add-tag", "", "bulk: add this tag to every selected flag")
	offIn := fs.String("off-in", "", "bulk: turn every selected flag off in this environment")
	bulkKeys := fs.String("flags", "", "bulk: only these flags (comma separated), else every flag the list filters select")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var listReq *adminv1.ListFlagsRequest
	switch cmd {
	case "validate":
		f, err := readFile(*file)
		if err != nil {
			return err
		}
		if problems := flagsfile.Validate(f); len(problems) > 0 {
			return fmt.Errorf("%s is invalid:\n  %s", *file, strings.Join(problems, "\n  "))
		}
		_, err = fmt.Fprintf(out, "%s is valid: %d flags, %d environments\n", *file, len(f.Flags), len(f.Environments))
		return err
	case "evaluate":
		return evaluate(ctx, out, *file, *env, *flagKey, *evalCtx, *evaluator, *sdkKey)
	case "export", "plan", "apply", "private-attributes", "webhooks deliveries", "webhooks test", "webhooks redeliver", "history", "revert", "rollback":
		if *org == "" || *project == "" || *token == "" {
			return errors.New("--org, --project and --token (or FLAGFORGE_TOKEN) are required")
		}
	case "list", "bulk":
		if *org == "" || *project == "" || *token == "" {
			return errors.New("--org, --project and --token (or FLAGFORGE_TOKEN) are required")
		}
		q, err := listRequest(*org, *project, *lq, *lTags, *lOwner, *lType, *lStatus, *env, *lOn, *lSort, *lDesc, *lArchived)
		if err != nil {
			return err
		}
		listReq = q
	case "contexts":
		if *env == "" {
			return errors.New("--env is required")
		}
		if *org == "" || *project == "" || *token == "" {
			return errors.New("--org, --project and --token (or FLAGFORGE_TOKEN) are required")
		}
	case "permissions", "roles list", "roles grant", "roles revoke":
		if *org == "" || *token == "" {
			return errors.New("--org and --token (or FLAGFORGE_TOKEN) are required")
		}
	default:
		return errors.New(usage)
	}
	conn, err := dial(*server, *useTLS, *caFile)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	c := remote.New(conn, *token)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	a := adminArgs{org: *org, project: *project, env: *env, member: *member, role: *role, hook: *hookID, delivery: *delivery}
	switch cmd {
	case "permissions", "roles list", "roles grant", "roles revoke", "webhooks deliveries", "webhooks test", "webhooks redeliver":
		return admin(ctx, c, out, cmd, a)
	case "list":
		l, err := c.List(ctx, listReq)
		if err != nil {
			return err
		}
		return l.Render(out)
	case "bulk":
		var keys []string
		for _, k := range strings.Split(*bulkKeys, ",") {
			if k = strings.TrimSpace(k); k != "" {
				keys = append(keys, k)
			}
		}
		bulkComment := *comment
		if bulkComment == "flagforge apply" {
			bulkComment = "flagforge bulk"
		}
		_, err := c.Bulk(ctx, out, listReq, keys, remote.BulkAction{AddTag: *addTag, OffIn: *offIn}, bulkComment, *dryRun)
		return err
	case "history", "revert", "rollback":
		return historyCommand(ctx, conn, out, fs, cmd, *token, history.Target{Org: *org, Project: *project, Environment: *env, Flag: *flagKey, Segment: *segment},
			*comment, *limit, *diffRange, *revision, *version, *at, *dryRun)
	case "export":
		f, err := c.Export(ctx, *org, *project, *env)
		if err != nil {
			return err
		}
		b, err := flagsfile.Encode(f, flagsfile.Format(*format))
		if err != nil {
			return err
		}
		if *output != "" {
			return os.WriteFile(*output, b, 0o644)
		}
		_, err = out.Write(b)
		return err
	case "plan":
		want, err := readFile(*file)
		if err != nil {
			return err
		}
		cur, err := c.Export(ctx, *org, *project, "")
		if err != nil {
			return err
		}
		changes, err := flagsfile.Plan(cur, want)
		if err != nil {
			return err
		}
		if _, err := io.WriteString(out, flagsfile.Render(changes)); err != nil || !*withImpact {
			return err
		}
		ims, err := c.Impact(ctx, *org, *project, cur, want, changes)
		_, _ = io.WriteString(out, remote.RenderImpact(ims))
		return err
	case "contexts":
		cs, total, err := c.SeenContexts(ctx, *org, *project, *env, *limit)
		if err != nil {
			return err
		}
		_, _ = fmt.Fprintf(out, "%d seen contexts in %s (showing %d, most recent first)\n", total, *env, len(cs))
		for _, sc := range cs {
			js, _ := protojson.Marshal(sc.GetAttributes())
			_, _ = fmt.Fprintf(out, "%s  %s\n", sc.GetLastSeenTime().AsTime().Format(time.RFC3339), js)
		}
		return nil
	case "private-attributes":
		var set []string
		switch *setPrivate {
		case "":
		case "-":
			set = []string{}
		default:
			set = strings.Split(*setPrivate, ",")
		}
		p, err := c.ContextPolicy(ctx, *org, *project, set)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "private attributes of %s/%s: %s\n", *org, *project, strings.Join(p.GetPrivateAttributes(), ", "))
		return err
	default: // apply
		f, err := readFile(*file)
		if err != nil {
			return err
		}
		if problems := flagsfile.Validate(f); len(problems) > 0 {
			return fmt.Errorf("%s is invalid, nothing applied:\n  %s", *file, strings.Join(problems, "\n  "))
		}
		res, err := c.Apply(ctx, *org, *project, f, *comment)
		if res != nil && res.Bulk != nil {
			b := res.Bulk
			_, _ = fmt.Fprintf(out, "applied: flags %d created, %d updated, %d unchanged; configurations %d updated, %d unchanged; segments %d created, %d updated, %d unchanged\n",
				b.GetFlagsCreated(), b.GetFlagsUpdated(), b.GetFlagsUnchanged(), b.GetConfigsUpdated(), b.GetConfigsUnchanged(),
				b.GetSegmentsCreated(), b.GetSegmentsUpdated(), b.GetSegmentsUnchanged())
		}
		if res != nil && len(res.ChangeRequests) > 0 {
			_, _ = fmt.Fprintf(out, "change requests opened (protected environments need approval):\n")
			for _, l := range res.ChangeRequests {
				_, _ = fmt.Fprintf(out, "  %s\n", l)
			}
		}
		return err
	}
}

// listRequest turns the list command's flags into a ListFlagsRequest; a value
// it cannot read is an error naming the flag.
func listRequest(org, project, q, tags, owner, typ, status, env, on, sort string, desc, archived bool) (*adminv1.ListFlagsRequest, error) {
	r := &adminv1.ListFlagsRequest{Org: org, Project: project, Query: q, Owner: owner, Environment: env, Descending: desc, IncludeArchived: archived}
	for _, t := range strings.Split(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			r.Tags = append(r.Tags, t)
		}
	}
	if typ != "" {
		v, ok := manifestv1.FlagType_value["FLAG_TYPE_"+strings.ToUpper(typ)]
		if !ok {
			return nil, fmt.Errorf("--type %q: boolean, string, number or json", typ)
		}
		r.Type = manifestv1.FlagType(v)
	}
	if status != "" {
		v, ok := adminv1.FlagStatus_value["FLAG_STATUS_"+strings.ToUpper(status)]
		if !ok {
			return nil, fmt.Errorf("--status %q: active, inactive, stale, archived or new", status)
		}
		r.Status = adminv1.FlagStatus(v)
	}
	switch on {
	case "":
	case "true", "false":
		b := on == "true"
		r.On = &b
	default:
		return nil, fmt.Errorf("--on %q: true or false", on)
	}
	sorts := map[string]adminv1.FlagSort{"": adminv1.FlagSort_FLAG_SORT_UNSPECIFIED, "key": adminv1.FlagSort_FLAG_SORT_KEY,
		"name": adminv1.FlagSort_FLAG_SORT_NAME, "created": adminv1.FlagSort_FLAG_SORT_CREATE_TIME, "updated": adminv1.FlagSort_FLAG_SORT_UPDATE_TIME}
	s, ok := sorts[sort]
	if !ok {
		return nil, fmt.Errorf("--sort %q: key, name, created or updated", sort)
	}
	r.Sort = s
	return r, nil
}

// dial connects to the control plane: plaintext, TLS with the system roots, or
// TLS trusting caFile.
func dial(server string, useTLS bool, caFile string) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	switch {
	case caFile != "":
		c, err := credentials.NewClientTLSFromFile(caFile, "")
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		creds = c
	case useTLS:
		creds = credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(server, grpc.WithTransportCredentials(creds))
}

// historyCommand runs history, revert and rollback.
func historyCommand(ctx context.Context, conn *grpc.ClientConn, out io.Writer, fs *flag.FlagSet, cmd, token string, target history.Target,
	comment string, limit int, diffRange string, revision int64, version uint64, at string, dryRun bool) error {
	// A revert's or rollback's comment is only what the caller said.
	why := ""
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "comment" {
			why = comment
		}
	})
	h := history.New(conn, token)
	switch cmd {
	case "history":
		if diffRange == "" {
			return h.List(ctx, out, target, limit)
		}
		from, to, err := parseRange(diffRange)
		if err != nil {
			return err
		}
		return h.Diff(ctx, out, target, from, to)
	case "revert":
		return h.Revert(ctx, out, target, revision, why)
	default:
		var t time.Time
		if at != "" {
			var err error
			if t, err = time.Parse(time.RFC3339Nano, at); err != nil {
				return fmt.Errorf("--time must be RFC 3339 (2026-11-28T07:00:00Z): %w", err)
			}
		}
		return h.Rollback(ctx, out, target.Org, target.Project, target.Environment, version, t, dryRun, why)
	}
}

// parseRange reads "FROM..TO" (TO empty: 0, the latest).
func parseRange(s string) (from, to int64, err error) {
	a, b, ok := strings.Cut(s, "..")
	if !ok {
		return 0, 0, errors.New("--diff must be FROM..TO, e.g. 2..3 (TO empty: the latest)")
	}
	if from, err = strconv.ParseInt(a, 10, 64); err != nil || from <= 0 {
		return 0, 0, fmt.Errorf("--diff: FROM must be a revision number: %q", a)
	}
	if b != "" {
		if to, err = strconv.ParseInt(b, 10, 64); err != nil || to <= 0 {
			return 0, 0, fmt.Errorf("--diff: TO must be a revision number or empty: %q", b)
		}
	}
	return from, to, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func readFile(path string) (*flagsfile.File, error) {
	if path == "" {
		return nil, errors.New("-f <file> is required")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := flagsfile.Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// evaluate decides a flag offline against a file, or asks an evaluator.
func evaluate(ctx context.Context, out io.Writer, file, env, flagKey, evalCtx, evaluator, sdkKey string) error {
	if flagKey == "" {
		return errors.New("--flag is required")
	}
	var attrs map[string]any
	if err := json.Unmarshal([]byte(evalCtx), &attrs); err != nil {
		return fmt.Errorf("--context must be a JSON object: %w", err)
	}
	if evaluator != "" {
		body, _ := json.Marshal(map[string]any{"flagKey": flagKey, "context": attrs})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(evaluator, "/")+"/v1/evaluate", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+sdkKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		var r struct {
			Value                                            any
			Variant, Reason, RuleID, ErrorCode, ErrorMessage string
			Message                                          string
		}
		b, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(b, &r); err != nil || resp.StatusCode != http.StatusOK {
			return fmt.Errorf("evaluator answered %d: %s", resp.StatusCode, b)
		}
		d := &flagsfile.Decision{Flag: flagKey, Environment: "the SDK key's environment", Value: r.Value, Variant: r.Variant, Reason: r.Reason,
			RuleID: r.RuleID, ErrorCode: r.ErrorCode, ErrorMessage: r.ErrorMessage}
		_, err = io.WriteString(out, d.Explain())
		return err
	}
	f, err := readFile(file)
	if err != nil {
		return err
	}
	if env == "" {
		return errors.New("--env is required with -f")
	}
	d, err := flagsfile.Evaluate(f, env, flagKey, attrs)
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, d.Explain())
	return err
}
