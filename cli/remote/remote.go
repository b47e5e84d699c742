// Package remote moves flags-as-code files to and from a FlagForge control plane
// over its gRPC admin API: Export reads a project (or one environment) into a
// flagsfile.File; Apply writes a file into a project, through one BulkWrite for
// everything environments without approvals may take at once, and through change
// requests for protected environments (whose links it returns). Apply never
// deletes: what the file leaves out stays.
package remote

import (
	"context"
	"fmt"
	"sort"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/cli/flagsfile"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Client is a control plane connection acting for one API token.
type Client struct {
	conn  grpc.ClientConnInterface
	token string
}

// New returns a client over conn authenticating with token.
func New(conn grpc.ClientConnInterface, token string) *Client {
	return &Client{conn: conn, token: token}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// Export reads project's flags and, per environment (only env when not empty),
// configurations and segments.
func (c *Client) Export(ctx context.Context, org, project, env string) (*flagsfile.File, error) {
	ctx = c.ctx(ctx)
	fs := adminv1.NewFlagServiceClient(c.conn)
	out := &flagsfile.File{Environments: map[string]*flagsfile.Environment{}}
	for tok := ""; ; {
		r, err := fs.ListFlags(ctx, &adminv1.ListFlagsRequest{Org: org, Project: project, PageSize: 1000, PageToken: tok})
		if err != nil {
			return nil, fmt.Errorf("listing flags: %w", err)
		}
		out.Flags = append(out.Flags, r.GetFlags()...)
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	live := map[string]bool{}
	for _, f := range out.Flags {
		live[f.GetKey()] = true
	}
	envs, err := c.environments(ctx, org, project)
	if err != nil {
		return nil, err
	}
	for _, e := range envs {
		if env != "" && e.GetKey() != env {
			continue
		}
		fe := &flagsfile.Environment{Configs: map[string]*manifestv1.FlagConfig{}}
		for tok := ""; ; {
			r, err := fs.ListFlagConfigs(ctx, &adminv1.ListFlagConfigsRequest{Org: org, Project: project, Environment: e.GetKey(), PageSize: 1000, PageToken: tok})
			if err != nil {
				return nil, fmt.Errorf("listing configurations of %s: %w", e.GetKey(), err)
			}
			for _, fc := range r.GetConfigs() {
				if live[fc.GetFlag()] {
					fe.Configs[fc.GetFlag()] = fc.GetConfig()
				}
			}
			if tok = r.GetNextPageToken(); tok == "" {
				break
			}
		}
		ss := adminv1.NewSegmentServiceClient(c.conn)
		for tok := ""; ; {
			r, err := ss.ListSegments(ctx, &adminv1.ListSegmentsRequest{Org: org, Project: project, Environment: e.GetKey(), PageSize: 1000, PageToken: tok})
			if err != nil {
				return nil, fmt.Errorf("listing segments of %s: %w", e.GetKey(), err)
			}
			fe.Segments = append(fe.Segments, r.GetSegments()...)
			if tok = r.GetNextPageToken(); tok == "" {
				break
			}
		}
		out.Environments[e.GetKey()] = fe
	}
	if env != "" && len(out.Environments) == 0 {
		return nil, fmt.Errorf("project %s has no environment %q", project, env)
	}
	out.Normalize()
	return out, nil
}

func (c *Client) environments(ctx context.Context, org, project string) ([]*adminv1.Environment, error) {
	r, err := adminv1.NewEnvironmentServiceClient(c.conn).ListEnvironments(ctx, &adminv1.ListEnvironmentsRequest{Org: org, Project: project, PageSize: 1000})
	if err != nil {
		return nil, fmt.Errorf("listing environments: %w", err)
	}
	return r.GetEnvironments(), nil
}

// Result is what Apply did.
type Result struct {
	// Bulk counts the direct writes (nil when there were none).
	Bulk *adminv1.BulkWriteResponse
	// ChangeRequests lists the change requests opened in protected environments,
	// as "<environment>/<id>: <what>".
	ChangeRequests []string
}

// Apply writes f into project: definitions and the content of environments
// without approvals in one BulkWrite (one transaction); the configurations and
// segments of protected environments that differ become change requests.
func (c *Client) Apply(ctx context.Context, org, project string, f *flagsfile.File, comment string) (*Result, error) {
	ctx = c.ctx(ctx)
	envs, err := c.environments(ctx, org, project)
	if err != nil {
		return nil, err
	}
	protected := map[string]bool{}
	known := map[string]bool{}
	for _, e := range envs {
		known[e.GetKey()] = true
		protected[e.GetKey()] = e.GetSettings().GetApprovalsRequired()
	}
	envKeys := make([]string, 0, len(f.Environments))
	for k := range f.Environments {
		if !known[k] {
			return nil, fmt.Errorf("project %s has no environment %q (create it first)", project, k)
		}
		envKeys = append(envKeys, k)
	}
	sort.Strings(envKeys)
	req := &adminv1.BulkWriteRequest{Org: org, Project: project, Flags: f.Flags, Comment: comment}
	for _, env := range envKeys {
		if protected[env] {
			continue
		}
		e := f.Environments[env]
		for _, s := range e.Segments {
			req.Segments = append(req.Segments, &adminv1.BulkSegment{Environment: env, Segment: s})
		}
		flags := make([]string, 0, len(e.Configs))
		for k := range e.Configs {
			flags = append(flags, k)
		}
		sort.Strings(flags)
		for _, k := range flags {
			req.Configs = append(req.Configs, &adminv1.BulkFlagConfig{Environment: env, Flag: k, Config: e.Configs[k]})
		}
	}
	fs := adminv1.NewFlagServiceClient(c.conn)
	res := &Result{}
	if res.Bulk, err = fs.BulkWrite(ctx, req); err != nil {
		return nil, fmt.Errorf("bulk write: %w", err)
	}
	for _, env := range envKeys {
		if !protected[env] {
			continue
		}
		crs, err := c.propose(ctx, org, project, env, f.Environments[env], comment)
		res.ChangeRequests = append(res.ChangeRequests, crs...)
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// propose opens a change request for every configuration and segment of a
// protected environment that differs from the file.
func (c *Client) propose(ctx context.Context, org, project, env string, e *flagsfile.Environment, comment string) ([]string, error) {
	var out []string
	fs := adminv1.NewFlagServiceClient(c.conn)
	flags := make([]string, 0, len(e.Configs))
	for k := range e.Configs {
		flags = append(flags, k)
	}
	sort.Strings(flags)
	for _, k := range flags {
		cur, err := fs.GetFlagConfig(ctx, &adminv1.GetFlagConfigRequest{Org: org, Project: project, Environment: env, Flag: k})
		if err != nil {
			return out, fmt.Errorf("reading %s/%s: %w", env, k, err)
		}
		if proto.Equal(cur.GetConfig().GetConfig(), e.Configs[k]) {
			continue
		}
		r, err := fs.UpdateFlagConfig(ctx, &adminv1.UpdateFlagConfigRequest{Org: org, Project: project, Environment: env, Flag: k,
			Config: e.Configs[k], Revision: cur.GetConfig().GetRevision(), Comment: comment})
		if err != nil {
			return out, fmt.Errorf("proposing %s/%s: %w", env, k, err)
		}
		if cr := r.GetChangeRequest(); cr != nil {
			out = append(out, link(org, project, env, cr.GetId(), "flag "+k))
		}
	}
	ss := adminv1.NewSegmentServiceClient(c.conn)
	crs := adminv1.NewChangeRequestServiceClient(c.conn)
	for _, s := range e.Segments {
		cur, err := ss.GetSegment(ctx, &adminv1.GetSegmentRequest{Org: org, Project: project, Environment: env, Segment: s.GetKey()})
		var base int64
		if err == nil {
			next := proto.CloneOf(s)
			next.Revision = cur.GetSegment().GetRevision()
			if proto.Equal(next, cur.GetSegment()) {
				continue
			}
			base = cur.GetSegment().GetRevision()
		}
		r, err := crs.CreateChangeRequest(ctx, &adminv1.CreateChangeRequestRequest{Org: org, Project: project, Environment: env,
			Change: &adminv1.ProposedChange{Change: &adminv1.ProposedChange_Segment{Segment: s}}, BaseRevision: base, Description: comment})
		if err != nil {
			return out, fmt.Errorf("proposing segment %s/%s: %w", env, s.GetKey(), err)
		}
		out = append(out, link(org, project, env, r.GetChangeRequest().GetId(), "segment "+s.GetKey()))
	}
	return out, nil
}

// link is the REST path of a change request (relative to the control plane's
// HTTP address), with what it changes.
func link(org, project, env, id, what string) string {
	return fmt.Sprintf("/v1/orgs/%s/projects/%s/environments/%s/change-requests/%s (%s)", org, project, env, id, what)
}
