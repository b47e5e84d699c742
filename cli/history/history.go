// Package history is the CLI's view of instant rollback over the control
// plane's HistoryService: list the revisions of a flag's configuration or a
// segment, diff two of them, revert to one, and roll an environment back to a
// manifest version or a time (with a preview). Every function writes what a
// person reads to out and returns the API's error unchanged.
package history

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Target names a flag's configuration (Flag) or a segment (Segment) in an
// environment.
type Target struct {
	Org, Project, Environment string
	Flag, Segment             string
}

func (t Target) check() error {
	if (t.Flag == "") == (t.Segment == "") {
		return fmt.Errorf("exactly one of --flag and --segment is required")
	}
	return nil
}

// Client calls the HistoryService for one API token.
type Client struct {
	h     adminv1.HistoryServiceClient
	token string
}

// New returns a client over conn authenticating with token.
func New(conn grpc.ClientConnInterface, token string) *Client {
	return &Client{h: adminv1.NewHistoryServiceClient(conn), token: token}
}

func (c *Client) ctx(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// List writes the newest limit revisions as a table.
func (c *Client) List(ctx context.Context, out io.Writer, t Target, limit int) error {
	if err := t.check(); err != nil {
		return err
	}
	var revs []*adminv1.Revision
	if t.Flag != "" {
		r, err := c.h.ListFlagConfigRevisions(c.ctx(ctx), &adminv1.ListFlagConfigRevisionsRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Flag: t.Flag, PageSize: int32(limit)})
		if err != nil {
			return err
		}
		revs = r.GetRevisions()
	} else {
		r, err := c.h.ListSegmentRevisions(c.ctx(ctx), &adminv1.ListSegmentRevisionsRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Segment: t.Segment, PageSize: int32(limit)})
		if err != nil {
			return err
		}
		revs = r.GetRevisions()
	}
	w := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintln(w, "REVISION\tTIME\tBY\tACTION\tDIGEST\tWHY")
	for _, r := range revs {
		digest := r.GetContentDigest()
		if len(digest) > 12 {
			digest = digest[:12]
		}
		if r.GetDeleted() {
			digest = "(deleted)"
		}
		why := r.GetComment()
		if r.GetChangeRequestId() != "" && !strings.Contains(why, r.GetChangeRequestId()) {
			why += " [change request " + r.GetChangeRequestId() + "]"
		}
		_, _ = fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.GetRevision(), r.GetCreateTime().AsTime().UTC().Format(time.RFC3339),
			r.GetActorName(), r.GetAction(), digest, why)
	}
	return w.Flush()
}

// Diff writes the operations that turn revision from into to (0: the latest).
func (c *Client) Diff(ctx context.Context, out io.Writer, t Target, from, to int64) error {
	if err := t.check(); err != nil {
		return err
	}
	var ops []*adminv1.DiffOperation
	var a, b *adminv1.Revision
	if t.Flag != "" {
		r, err := c.h.DiffFlagConfigRevisions(c.ctx(ctx), &adminv1.DiffFlagConfigRevisionsRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Flag: t.Flag, From: from, To: to})
		if err != nil {
			return err
		}
		ops, a, b = r.GetDiff(), r.GetFrom(), r.GetTo()
	} else {
		r, err := c.h.DiffSegmentRevisions(c.ctx(ctx), &adminv1.DiffSegmentRevisionsRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Segment: t.Segment, From: from, To: to})
		if err != nil {
			return err
		}
		ops, a, b = r.GetDiff(), r.GetFrom(), r.GetTo()
	}
	_, _ = fmt.Fprintf(out, "revision %d -> %d: %d change(s)\n", a.GetRevision(), b.GetRevision(), len(ops))
	writeOps(out, "  ", ops)
	return nil
}

func writeOps(out io.Writer, indent string, ops []*adminv1.DiffOperation) {
	for _, o := range ops {
		before, after := jsonOf(o.GetBefore()), jsonOf(o.GetAfter())
		switch o.GetOp() {
		case "add":
			_, _ = fmt.Fprintf(out, "%s+ %s: %s\n", indent, o.GetPath(), after)
		case "remove":
			_, _ = fmt.Fprintf(out, "%s- %s: %s\n", indent, o.GetPath(), before)
		default:
			_, _ = fmt.Fprintf(out, "%s~ %s: %s -> %s\n", indent, o.GetPath(), before, after)
		}
	}
}

func jsonOf(v *structpb.Value) string {
	if v == nil {
		return "null"
	}
	b, err := protojson.Marshal(v)
	if err != nil {
		return "?"
	}
	return string(b)
}

// Revert restores revision rev and says what happened: saved, or a change
// request opened (protected environment).
func (c *Client) Revert(ctx context.Context, out io.Writer, t Target, rev int64, comment string) error {
	if err := t.check(); err != nil {
		return err
	}
	var cr *adminv1.ChangeRequest
	saved := int64(0)
	if t.Flag != "" {
		r, err := c.h.RevertFlagConfig(c.ctx(ctx), &adminv1.RevertFlagConfigRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Flag: t.Flag, Revision: rev, Comment: comment})
		if err != nil {
			return err
		}
		cr, saved = r.GetChangeRequest(), r.GetConfig().GetRevision()
	} else {
		r, err := c.h.RevertSegment(c.ctx(ctx), &adminv1.RevertSegmentRequest{
			Org: t.Org, Project: t.Project, Environment: t.Environment, Segment: t.Segment, Revision: rev, Comment: comment})
		if err != nil {
			return err
		}
		cr, saved = r.GetChangeRequest(), r.GetSegment().GetRevision()
	}
	if cr != nil {
		_, err := fmt.Fprintf(out, "change request %s opened: revision %d is restored once it is approved and applied\n", cr.GetId(), rev)
		return err
	}
	_, err := fmt.Fprintf(out, "restored revision %d (now revision %d)\n", rev, saved)
	return err
}

// Rollback restores the environment to a manifest version (version > 0) or a
// time; with dryRun it only previews.
func (c *Client) Rollback(ctx context.Context, out io.Writer, org, project, env string, version uint64, at time.Time, dryRun bool, comment string) error {
	req := &adminv1.RollbackEnvironmentRequest{Org: org, Project: project, Environment: env, DryRun: dryRun, Comment: comment}
	switch {
	case version > 0:
		req.Target = &adminv1.RollbackEnvironmentRequest_ManifestVersion{ManifestVersion: version}
	case !at.IsZero():
		req.Target = &adminv1.RollbackEnvironmentRequest_Time{Time: timestamppb.New(at)}
	}
	r, err := c.h.RollbackEnvironment(c.ctx(ctx), req)
	if err != nil {
		return err
	}
	_, _ = fmt.Fprintf(out, "rollback of %s to %s: %d change(s), %d skipped\n", env, r.GetTarget(), len(r.GetChanges()), len(r.GetSkipped()))
	for _, it := range r.GetChanges() {
		_, _ = fmt.Fprintf(out, "  %s %s %s\n", it.GetAction(), it.GetKind(), it.GetKey())
		writeOps(out, "      ", it.GetDiff())
	}
	for _, it := range r.GetSkipped() {
		_, _ = fmt.Fprintf(out, "  skip %s %s: %s\n", it.GetKind(), it.GetKey(), it.GetReason())
	}
	switch {
	case dryRun:
		_, err = fmt.Fprintln(out, "dry run: nothing written")
	case r.GetChangeRequest() != nil:
		_, err = fmt.Fprintf(out, "change request %s opened: the rollback applies once it is approved and applied\n", r.GetChangeRequest().GetId())
	case r.GetApplied():
		_, err = fmt.Fprintln(out, "applied")
	default:
		_, err = fmt.Fprintln(out, "nothing to change")
	}
	return err
}
