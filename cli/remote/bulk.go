package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// BulkAction is what `flagforge bulk` does to every selected flag: add a tag
// (AddTag), or turn it off in one environment (OffIn). Exactly one is set.
type BulkAction struct {
	AddTag string
	OffIn  string
}

// Bulk applies a to the flags q selects (keys, when not empty, narrows them to
// those keys; a key that is not listed is an error) in ONE BulkWrite: one
// transaction, all or nothing, each item based on the revision just read, so a
// flag changed meanwhile refuses the whole write. With dryRun it only writes
// what it would do. An environment that requires approvals refuses turning
// flags off in bulk (the server's reason is returned; `flagforge apply`
// proposes such changes as change requests).
func (c *Client) Bulk(ctx context.Context, out io.Writer, q *adminv1.ListFlagsRequest, keys []string, a BulkAction, comment string, dryRun bool) (*adminv1.BulkWriteResponse, error) {
	if (a.AddTag == "") == (a.OffIn == "") {
		return nil, errors.New("exactly one of --add-tag and --off-in is required")
	}
	l, err := c.List(ctx, q)
	if err != nil {
		return nil, err
	}
	sel := l.Flags
	if len(keys) > 0 {
		sel = nil
		for _, k := range keys {
			i := slices.IndexFunc(l.Flags, func(f *adminv1.Flag) bool { return f.GetKey() == k })
			if i < 0 {
				return nil, fmt.Errorf("--flags: %q is not a flag of %s/%s matching the filters", k, q.GetOrg(), q.GetProject())
			}
			sel = append(sel, l.Flags[i])
		}
	}
	if len(sel) == 0 {
		_, err := fmt.Fprintln(out, "no flag matches: nothing to do")
		return &adminv1.BulkWriteResponse{}, err
	}
	req := &adminv1.BulkWriteRequest{Org: q.GetOrg(), Project: q.GetProject(), Comment: comment}
	var lines []string
	switch {
	case a.AddTag != "":
		for _, f := range sel {
			if slices.Contains(f.GetTags(), a.AddTag) {
				lines = append(lines, fmt.Sprintf("%s: already tagged %s", f.GetKey(), a.AddTag))
				continue
			}
			next := proto.CloneOf(f)
			next.Tags = append(next.Tags, a.AddTag)
			req.Flags = append(req.Flags, next) // next.Revision: the revision read
			lines = append(lines, fmt.Sprintf("%s: add tag %s", f.GetKey(), a.AddTag))
		}
	default:
		fs := adminv1.NewFlagServiceClient(c.conn)
		for _, f := range sel {
			st := l.States[f.GetKey()]
			i := slices.IndexFunc(st.GetStates(), func(s *adminv1.FlagEnvironmentState) bool { return s.GetEnvironment() == a.OffIn })
			if i < 0 {
				return nil, fmt.Errorf("--off-in: %q is not an environment of %s/%s", a.OffIn, q.GetOrg(), q.GetProject())
			}
			if !st.GetStates()[i].GetOn() {
				lines = append(lines, fmt.Sprintf("%s: already off in %s", f.GetKey(), a.OffIn))
				continue
			}
			cur, err := fs.GetFlagConfig(c.ctx(ctx), &adminv1.GetFlagConfigRequest{Org: q.GetOrg(), Project: q.GetProject(), Environment: a.OffIn, Flag: f.GetKey()})
			if err != nil {
				return nil, fmt.Errorf("reading %s in %s: %w", f.GetKey(), a.OffIn, err)
			}
			cfg := proto.CloneOf(cur.GetConfig().GetConfig())
			cfg.On = false
			req.Configs = append(req.Configs, &adminv1.BulkFlagConfig{Environment: a.OffIn, Flag: f.GetKey(), Config: cfg, BaseRevision: cur.GetConfig().GetRevision()})
			lines = append(lines, fmt.Sprintf("%s: turn off in %s (based on revision %d)", f.GetKey(), a.OffIn, cur.GetConfig().GetRevision()))
		}
	}
	for _, line := range lines {
		if _, err := fmt.Fprintln(out, line); err != nil {
			return nil, err
		}
	}
	if len(req.Flags)+len(req.Configs) == 0 {
		_, err := fmt.Fprintln(out, "nothing to change")
		return &adminv1.BulkWriteResponse{}, err
	}
	if dryRun {
		_, err := fmt.Fprintf(out, "dry run: one bulk write of %d flag(s) would be sent; nothing was changed\n", len(req.Flags)+len(req.Configs))
		return &adminv1.BulkWriteResponse{}, err
	}
	res, err := adminv1.NewFlagServiceClient(c.conn).BulkWrite(c.ctx(ctx), req)
	if err != nil {
		return nil, fmt.Errorf("bulk write (nothing was changed): %w", err)
	}
	_, err = fmt.Fprintf(out, "one bulk write: %s\n", strings.Join([]string{
		fmt.Sprintf("%d flag(s) updated", res.GetFlagsUpdated()),
		fmt.Sprintf("%d configuration(s) updated", res.GetConfigsUpdated()),
	}, ", "))
	return res, err
}
