package remote

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// FlagList is what List read: the matching flags in order, each with its state
// per environment.
type FlagList struct {
	Flags  []*adminv1.Flag
	States map[string]*adminv1.FlagEnvironmentStates
	Total  int32
}

// List reads every flag matching q (all pages; org, project, filters and sort as
// set in q) with its state in each environment: the server filters and sorts.
func (c *Client) List(ctx context.Context, q *adminv1.ListFlagsRequest) (*FlagList, error) {
	ctx = c.ctx(ctx)
	fs := adminv1.NewFlagServiceClient(c.conn)
	out := &FlagList{States: map[string]*adminv1.FlagEnvironmentStates{}}
	for tok := ""; ; {
		r, err := fs.ListFlags(ctx, &adminv1.ListFlagsRequest{
			Org: q.GetOrg(), Project: q.GetProject(), PageSize: 1000, PageToken: tok,
			Tag: q.GetTag(), IncludeArchived: q.GetIncludeArchived(), Query: q.GetQuery(), Tags: q.GetTags(), Owner: q.GetOwner(),
			Type: q.GetType(), Status: q.GetStatus(), Environment: q.GetEnvironment(), On: q.On, Sort: q.GetSort(),
			Descending: q.GetDescending(), IncludeEnvironments: true,
		})
		if err != nil {
			return nil, fmt.Errorf("listing flags: %w", err)
		}
		out.Flags = append(out.Flags, r.GetFlags()...)
		for _, st := range r.GetEnvironments() {
			out.States[st.GetFlag()] = st
		}
		out.Total = r.GetTotalSize()
		if tok = r.GetNextPageToken(); tok == "" {
			break
		}
	}
	return out, nil
}

// Render writes l as a table: key, type, tags, owner, then "on/off status" per
// environment (in the order the server listed them).
func (l *FlagList) Render(w io.Writer) error {
	var envs []string
	seen := map[string]bool{}
	for _, f := range l.Flags {
		for _, s := range l.States[f.GetKey()].GetStates() {
			if !seen[s.GetEnvironment()] {
				seen[s.GetEnvironment()] = true
				envs = append(envs, s.GetEnvironment())
			}
		}
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	_, _ = fmt.Fprintf(tw, "KEY\tTYPE\tTAGS\tOWNER\t%s\n", strings.ToUpper(strings.Join(envs, "\t")))
	for _, f := range l.Flags {
		cells := []string{f.GetKey(), strings.ToLower(strings.TrimPrefix(f.GetType().String(), "FLAG_TYPE_")), strings.Join(f.GetTags(), ","), f.GetOwner()}
		byEnv := map[string]*adminv1.FlagEnvironmentState{}
		for _, s := range l.States[f.GetKey()].GetStates() {
			byEnv[s.GetEnvironment()] = s
		}
		for _, e := range envs {
			s := byEnv[e]
			onOff := "off"
			if s.GetOn() {
				onOff = "on"
			}
			cells = append(cells, onOff+" "+strings.ToLower(strings.TrimPrefix(s.GetStatus().String(), "FLAG_STATUS_")))
		}
		_, _ = fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	_, _ = fmt.Fprintf(tw, "%d flags\n", len(l.Flags))
	return tw.Flush()
}
