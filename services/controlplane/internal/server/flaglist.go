package server

import (
	"cmp"
	"context"
	"encoding/base64"
	"slices"
	"strconv"
	"strings"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// maxQueryLen bounds ListFlags' free-text query.
const maxQueryLen = 200

// ListFlags lists a project's flags. With only tag and include_archived it pages
// through the store by key. Any other filter, a sort, or include_environments
// makes the control plane read the project's flags and their configurations,
// compute each lifecycle status (it depends on the clock and on usage, so SQL
// cannot), then filter, sort and cut the page: one call answers what the console's
// flags list shows, however many environments the project has.
func (s *FlagService) ListFlags(ctx context.Context, req *adminv1.ListFlagsRequest) (*adminv1.ListFlagsResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.optKey("tag", req.GetTag())
	for i, t := range req.GetTags() {
		c.key(idx("tags", i), t)
	}
	if len(req.GetTags()) > maxTags {
		c.fail("tags", "at most %d tags", maxTags)
	}
	c.text("query", req.GetQuery(), maxQueryLen, false)
	c.text("owner", req.GetOwner(), maxName, false)
	if _, ok := manifestv1.FlagType_name[int32(req.GetType())]; !ok {
		c.fail("type", "unknown flag type")
	}
	if _, ok := adminv1.FlagStatus_name[int32(req.GetStatus())]; !ok {
		c.fail("status", "unknown status")
	}
	if _, ok := adminv1.FlagSort_name[int32(req.GetSort())]; !ok {
		c.fail("sort", "unknown sort")
	}
	c.optKey("environment", req.GetEnvironment())
	if req.On != nil && req.GetEnvironment() == "" {
		c.fail("on", "filters by on/off in one environment: set environment too")
	}
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ref := store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}
	if !inMemoryList(req) {
		fs, next, err := s.store.ListFlags(ctx, ref, store.FlagFilter{Tag: req.GetTag(), IncludeArchived: req.GetIncludeArchived()}, page)
		if err != nil {
			return nil, err
		}
		return &adminv1.ListFlagsResponse{Flags: fs, NextPageToken: next}, nil
	}
	return s.listFlagsInMemory(ctx, ref, req, page)
}

// inMemoryList reports whether req needs more than the store's keyset listing.
func inMemoryList(req *adminv1.ListFlagsRequest) bool {
	return req.GetQuery() != "" || len(req.GetTags()) > 0 || req.GetOwner() != "" ||
		req.GetType() != manifestv1.FlagType_FLAG_TYPE_UNSPECIFIED || req.GetStatus() != adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED ||
		req.GetEnvironment() != "" || req.On != nil || req.GetSort() != adminv1.FlagSort_FLAG_SORT_UNSPECIFIED ||
		req.GetDescending() || req.GetIncludeEnvironments()
}

// offsetToken encodes the position of the next page of an in-memory listing;
// "@" keeps it apart from the store's keyset tokens (a key never starts with it).
func offsetToken(n int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("@" + strconv.Itoa(n)))
}

func parseOffsetToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err == nil && len(b) > 1 && b[0] == '@' {
		if n, err := strconv.Atoi(string(b[1:])); err == nil && n >= 0 {
			return n, nil
		}
	}
	return 0, errs.Invalid("page_token", "invalid page token (a token is valid only with the filters and sort it was returned for)")
}

func (s *FlagService) listFlagsInMemory(ctx context.Context, ref store.ProjectRef, req *adminv1.ListFlagsRequest, page store.Page) (*adminv1.ListFlagsResponse, error) {
	offset, err := parseOffsetToken(page.Token)
	if err != nil {
		return nil, err
	}
	size := page.Size
	if size <= 0 {
		size = 50
	}
	archived := req.GetIncludeArchived() || req.GetStatus() == adminv1.FlagStatus_FLAG_STATUS_ARCHIVED
	var flags []*adminv1.Flag
	for tok := ""; ; {
		fs, next, err := s.store.ListFlags(ctx, ref, store.FlagFilter{Tag: req.GetTag(), IncludeArchived: archived}, store.Page{Size: maxPageSize, Token: tok})
		if err != nil {
			return nil, err
		}
		flags = append(flags, fs...)
		if tok = next; tok == "" {
			break
		}
	}
	// The configurations read, in one query: of the environment filtered on, or
	// of every environment when states are answered or the status is matched in any.
	var envs []string
	if e := req.GetEnvironment(); e != "" {
		if _, err := s.store.GetEnvironment(ctx, store.EnvRef{Org: ref.Org, Project: ref.Project, Environment: e}); err != nil {
			return nil, err
		}
		envs = []string{e}
	}
	readConfigs := req.GetIncludeEnvironments() || req.GetStatus() != adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED || req.GetEnvironment() != ""
	if req.GetIncludeEnvironments() || (req.GetStatus() != adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED && req.GetEnvironment() == "") {
		envs = nil // every environment
	}
	byFlag := map[string]*adminv1.FlagEnvironmentStates{}
	flagByKey := map[string]*adminv1.Flag{}
	for _, f := range flags {
		byFlag[f.GetKey()] = &adminv1.FlagEnvironmentStates{Flag: f.GetKey()}
		flagByKey[f.GetKey()] = f
	}
	latest := map[string]int64{} // flag -> latest change (definition or any configuration), unix micros
	for _, f := range flags {
		latest[f.GetKey()] = f.GetUpdateTime().AsTime().UnixMicro()
	}
	now := s.clock()
	if readConfigs {
		fcs, err := s.store.ListProjectFlagConfigs(ctx, ref, envs)
		if err != nil {
			return nil, err
		}
		for _, fc := range fcs {
			st := byFlag[fc.GetFlag()]
			if st == nil {
				continue // archived and not asked for, or filtered by tag
			}
			f := flagByKey[fc.GetFlag()]
			st.States = append(st.States, &adminv1.FlagEnvironmentState{
				Environment: fc.GetEnvironment(), On: fc.GetConfig().GetOn(), Status: s.life.Status(f, fc, now),
				Revision: fc.GetRevision(), UpdateTime: fc.GetUpdateTime(), LastEvaluated: fc.GetLastEvaluated(),
			})
			if u := fc.GetUpdateTime().AsTime().UnixMicro(); u > latest[fc.GetFlag()] {
				latest[fc.GetFlag()] = u
			}
		}
	}
	words := strings.Fields(strings.ToLower(req.GetQuery()))
	owner := strings.ToLower(req.GetOwner())
	keep := flags[:0:0]
	for _, f := range flags {
		if matchFlag(f, byFlag[f.GetKey()], req, words, owner) {
			keep = append(keep, f)
		}
	}
	sortFlags(keep, req.GetSort(), latest)
	if req.GetDescending() {
		slices.Reverse(keep)
	}
	out := &adminv1.ListFlagsResponse{TotalSize: int32(len(keep))}
	if offset < len(keep) {
		end := min(offset+size, len(keep))
		out.Flags = keep[offset:end]
		if end < len(keep) {
			out.NextPageToken = offsetToken(end)
		}
	}
	if req.GetIncludeEnvironments() {
		for _, f := range out.Flags {
			out.Environments = append(out.Environments, byFlag[f.GetKey()])
		}
	}
	return out, nil
}

// matchFlag applies ListFlags' filters to f and its states.
func matchFlag(f *adminv1.Flag, st *adminv1.FlagEnvironmentStates, req *adminv1.ListFlagsRequest, words []string, owner string) bool {
	for _, t := range req.GetTags() {
		if !slices.Contains(f.GetTags(), t) {
			return false
		}
	}
	if owner != "" && !strings.Contains(strings.ToLower(f.GetOwner()), owner) {
		return false
	}
	if req.GetType() != manifestv1.FlagType_FLAG_TYPE_UNSPECIFIED && f.GetType() != req.GetType() {
		return false
	}
	if len(words) > 0 {
		hay := strings.ToLower(f.GetKey() + " " + f.GetName() + " " + f.GetDescription() + " " + strings.Join(f.GetTags(), " "))
		for _, w := range words {
			if !strings.Contains(hay, w) {
				return false
			}
		}
	}
	env := req.GetEnvironment()
	if req.On != nil && !slices.ContainsFunc(st.GetStates(), func(s *adminv1.FlagEnvironmentState) bool {
		return s.GetEnvironment() == env && s.GetOn() == req.GetOn()
	}) {
		return false
	}
	if want := req.GetStatus(); want != adminv1.FlagStatus_FLAG_STATUS_UNSPECIFIED && !slices.ContainsFunc(st.GetStates(), func(s *adminv1.FlagEnvironmentState) bool {
		return (env == "" || s.GetEnvironment() == env) && s.GetStatus() == want
	}) {
		return false
	}
	return true
}

// sortFlags orders fs by the requested sort, ties by key (ascending).
func sortFlags(fs []*adminv1.Flag, by adminv1.FlagSort, latest map[string]int64) {
	slices.SortStableFunc(fs, func(a, b *adminv1.Flag) int {
		var c int
		switch by {
		case adminv1.FlagSort_FLAG_SORT_NAME:
			c = cmp.Compare(strings.ToLower(cmp.Or(a.GetName(), a.GetKey())), strings.ToLower(cmp.Or(b.GetName(), b.GetKey())))
		case adminv1.FlagSort_FLAG_SORT_CREATE_TIME:
			c = a.GetCreateTime().AsTime().Compare(b.GetCreateTime().AsTime())
		case adminv1.FlagSort_FLAG_SORT_UPDATE_TIME:
			c = cmp.Compare(latest[a.GetKey()], latest[b.GetKey()])
		}
		return cmp.Or(c, cmp.Compare(a.GetKey(), b.GetKey()))
	})
}
