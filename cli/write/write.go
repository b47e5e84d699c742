// Package write is the CLI's direct writes of one environment (`flagforge config
// set|patch`, `flagforge segment set`): a flag's configuration or a segment, as
// the admin API's UpdateFlagConfig, PatchFlagConfig and UpdateSegment take them,
// with their dry run (validated as the write, impact previewed, nothing written).
package write

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/flagforge/flagforge/cli/remote"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/strictjson"
)

// Client writes to one environment.
type Client struct {
	conn                     grpc.ClientConnInterface
	token, org, project, env string
}

// New returns a client of org/project/env authenticating with token.
func New(conn grpc.ClientConnInterface, token, org, project, env string) *Client {
	return &Client{conn: conn, token: token, org: org, project: project, env: env}
}

// Options are a write's common settings.
type Options struct {
	// Revision the change is based on (0: the current one).
	Revision int64
	Comment  string
	DryRun   bool
}

// Result is what a write (or its dry run) answered.
type Result struct {
	Environment string
	DryRun      bool
	// Saved is the configuration or segment saved (in a dry run: as it would be).
	Saved         proto.Message
	ChangeRequest *adminv1.ChangeRequest
	Impact        *adminv1.Impact
	// WouldOpenChangeRequest: a dry run in an environment requiring approvals.
	WouldOpenChangeRequest bool
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// SetConfig replaces flag's configuration with config (JSON as the REST API
// takes it, or @file).
func (c *Client) SetConfig(ctx context.Context, flag, config string, o Options) (*Result, error) {
	ctx = c.ctx(ctx)
	cfg := &manifestv1.FlagConfig{}
	if err := Decode("--config", config, cfg); err != nil {
		return nil, err
	}
	api := adminv1.NewFlagServiceClient(c.conn)
	if o.Revision == 0 {
		cur, err := api.GetFlagConfig(ctx, &adminv1.GetFlagConfigRequest{Org: c.org, Project: c.project, Environment: c.env, Flag: flag})
		if err != nil {
			return nil, err
		}
		o.Revision = cur.GetConfig().GetRevision()
	}
	r, err := api.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: c.org, Project: c.project, Environment: c.env, Flag: flag,
		Config: cfg, Revision: o.Revision, Comment: o.Comment, DryRun: o.DryRun})
	if err != nil {
		return nil, err
	}
	return &Result{Environment: c.env, DryRun: o.DryRun, Saved: r.GetConfig(), ChangeRequest: r.GetChangeRequest(), Impact: r.GetImpact(),
		WouldOpenChangeRequest: r.GetWouldOpenChangeRequest()}, nil
}

// PatchConfig merges patch (a JSON merge patch, e.g. {"on": true}) into flag's
// configuration.
func (c *Client) PatchConfig(ctx context.Context, flag, patch string, o Options) (*Result, error) {
	if patch == "" {
		return nil, errors.New(`--patch is required, e.g. '{"on": true}'`)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(patch), &m); err != nil {
		return nil, fmt.Errorf("--patch must be a JSON object: %w", err)
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("--patch: %w", err)
	}
	r, err := adminv1.NewFlagServiceClient(c.conn).PatchFlagConfig(c.ctx(ctx), &adminv1.PatchFlagConfigRequest{Org: c.org, Project: c.project,
		Environment: c.env, Flag: flag, Patch: st, Revision: o.Revision, Comment: o.Comment, DryRun: o.DryRun})
	if err != nil {
		return nil, err
	}
	return &Result{Environment: c.env, DryRun: o.DryRun, Saved: r.GetConfig(), ChangeRequest: r.GetChangeRequest(), Impact: r.GetImpact(),
		WouldOpenChangeRequest: r.GetWouldOpenChangeRequest()}, nil
}

// SetSegment replaces segment's definition (JSON or @file).
func (c *Client) SetSegment(ctx context.Context, segment, definition string, o Options) (*Result, error) {
	ctx = c.ctx(ctx)
	sg := &manifestv1.Segment{}
	if err := Decode("--definition", definition, sg); err != nil {
		return nil, err
	}
	api := adminv1.NewSegmentServiceClient(c.conn)
	if o.Revision == 0 {
		cur, err := api.GetSegment(ctx, &adminv1.GetSegmentRequest{Org: c.org, Project: c.project, Environment: c.env, Segment: segment})
		if err != nil {
			return nil, err
		}
		o.Revision = cur.GetSegment().GetRevision()
	}
	r, err := api.UpdateSegment(ctx, &adminv1.UpdateSegmentRequest{Org: c.org, Project: c.project, Environment: c.env, Segment: segment,
		Definition: sg, Revision: o.Revision, Comment: o.Comment, DryRun: o.DryRun})
	if err != nil {
		return nil, err
	}
	return &Result{Environment: c.env, DryRun: o.DryRun, Saved: r.GetSegment(), ChangeRequest: r.GetChangeRequest(), Impact: r.GetImpact(),
		WouldOpenChangeRequest: r.GetWouldOpenChangeRequest()}, nil
}

// Decode reads a JSON message from an argument (or @file) as the REST API takes
// it; name is the argument's flag, for errors.
func Decode(name, arg string, m proto.Message) error {
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

// Render writes r for people: what was (or would be) saved, the change request,
// and the impact preview.
func Render(out io.Writer, r *Result) error {
	var b strings.Builder
	switch {
	case r.ChangeRequest != nil:
		fmt.Fprintf(&b, "approvals required: change request %s opened (content digest %s)\n", r.ChangeRequest.GetId(), r.ChangeRequest.GetContentDigest())
	case r.DryRun && r.WouldOpenChangeRequest:
		fmt.Fprintf(&b, "dry run: valid; nothing written. Environment %s requires approvals: the write would open a change request with:\n", r.Environment)
	case r.DryRun:
		b.WriteString("dry run: valid; nothing written. The write would save:\n")
	default:
		b.WriteString("saved:\n")
	}
	if r.Saved != nil && r.Saved.ProtoReflect().IsValid() && r.ChangeRequest == nil {
		js, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(r.Saved)
		if err != nil {
			return err
		}
		b.Write(js)
		b.WriteString("\n")
	}
	if r.Impact != nil {
		b.WriteString(remote.RenderImpact([]remote.EnvImpact{{Environment: r.Environment, Impact: r.Impact}}))
	}
	_, err := io.WriteString(out, b.String())
	return err
}
