package remote

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flagforge/flagforge/cli/flagsfile"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// EnvImpact is the impact preview of a plan's changes in one environment.
type EnvImpact struct {
	Environment string
	Impact      *adminv1.Impact
	// Skipped says why nothing was previewed (e.g. only new flags change).
	Skipped string
}

// Impact previews, per environment, what the plan's configuration and segment
// changes do to the environment's seen contexts (ImpactService/PreviewImpact).
// Configurations of flags the project does not have yet are left out: nothing
// evaluated them.
func (c *Client) Impact(ctx context.Context, org, project string, current, desired *flagsfile.File, plan []flagsfile.Change) ([]EnvImpact, error) {
	existing := map[string]bool{}
	for _, f := range current.Flags {
		existing[f.GetKey()] = true
	}
	byEnv := map[string][]*adminv1.ProposedChange{}
	var envs []string
	for _, ch := range plan {
		e := desired.Environments[ch.Environment]
		if ch.Environment == "" || e == nil {
			continue
		}
		var pc *adminv1.ProposedChange
		switch ch.Kind {
		case "config":
			if !existing[ch.Key] {
				continue
			}
			pc = &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{
				FlagConfig: &adminv1.FlagConfigChange{Flag: ch.Key, Config: e.Configs[ch.Key]}}}
		case "segment":
			for _, s := range e.Segments {
				if s.GetKey() == ch.Key {
					pc = &adminv1.ProposedChange{Change: &adminv1.ProposedChange_Segment{Segment: s}}
				}
			}
		}
		if pc == nil {
			continue
		}
		if _, ok := byEnv[ch.Environment]; !ok {
			envs = append(envs, ch.Environment)
		}
		byEnv[ch.Environment] = append(byEnv[ch.Environment], pc)
	}
	sort.Strings(envs)
	api := adminv1.NewImpactServiceClient(c.conn)
	var out []EnvImpact
	for _, env := range envs {
		changes := byEnv[env]
		for len(changes) > 0 {
			n := min(len(changes), 100)
			res, err := api.PreviewImpact(c.ctx(ctx), &adminv1.PreviewImpactRequest{Org: org, Project: project, Environment: env, Changes: changes[:n]})
			if err != nil {
				return out, fmt.Errorf("impact preview in %s: %w", env, err)
			}
			out = append(out, EnvImpact{Environment: env, Impact: res.GetImpact()})
			changes = changes[n:]
		}
	}
	return out, nil
}

// RenderImpact renders impact previews for people: per environment and flag,
// the decisions that change, the variant matrix and a few examples with the
// rule responsible.
func RenderImpact(ims []EnvImpact) string {
	var b strings.Builder
	for _, e := range ims {
		im := e.Impact
		fmt.Fprintf(&b, "\nImpact in %s over %d seen contexts: %d decisions change\n", e.Environment, im.GetContexts(), im.GetChanged())
		if im.GetContexts() == 0 {
			b.WriteString("  (no seen contexts yet: evaluators report them with their usage counts)\n")
		}
		for _, f := range im.GetFlags() {
			how := "changed by the file"
			if !f.GetDirect() {
				how = "through a segment or prerequisite"
			}
			fmt.Fprintf(&b, "  %s (%s): %d of %d change\n", f.GetFlag(), how, f.GetChanged(), im.GetContexts())
			for _, t := range f.GetTransitions() {
				if t.GetFromVariant() != t.GetToVariant() {
					fmt.Fprintf(&b, "    %s -> %s: %d\n", variant(t.GetFromVariant()), variant(t.GetToVariant()), t.GetCount())
				}
			}
			for _, ex := range f.GetExamples() {
				js, _ := protojson.Marshal(ex.GetContext())
				rule := ex.GetToReason()
				if ex.GetToRuleId() != "" {
					rule += " rule " + ex.GetToRuleId()
				}
				fmt.Fprintf(&b, "    e.g. %s: %s -> %s (%s)\n", js, variant(ex.GetFromVariant()), variant(ex.GetToVariant()), rule)
			}
		}
	}
	return b.String()
}

func variant(v string) string {
	if v == "" {
		return "(default)"
	}
	return v
}

// SeenContexts lists up to limit of an environment's seen contexts, most
// recently seen first, and how many the environment holds.
func (c *Client) SeenContexts(ctx context.Context, org, project, env string, limit int) ([]*adminv1.SeenContext, int64, error) {
	api := adminv1.NewSeenContextServiceClient(c.conn)
	var out []*adminv1.SeenContext
	var total int64
	token := ""
	for {
		res, err := api.ListSeenContexts(c.ctx(ctx), &adminv1.ListSeenContextsRequest{Org: org, Project: project, Environment: env,
			PageSize: int32(min(max(limit-len(out), 1), 1000)), PageToken: token}) //nolint:gosec // bounded by 1000
		if err != nil {
			return nil, 0, err
		}
		out = append(out, res.GetContexts()...)
		total = res.GetTotal()
		token = res.GetNextPageToken()
		if token == "" || len(out) >= limit {
			return out[:min(len(out), limit)], total, nil
		}
	}
}

// ContextPolicy reads the project's private attributes, or replaces them when
// set is not nil.
func (c *Client) ContextPolicy(ctx context.Context, org, project string, set []string) (*adminv1.ContextPolicy, error) {
	api := adminv1.NewSeenContextServiceClient(c.conn)
	if set == nil {
		res, err := api.GetContextPolicy(c.ctx(ctx), &adminv1.GetContextPolicyRequest{Org: org, Project: project})
		return res.GetPolicy(), err
	}
	res, err := api.UpdateContextPolicy(c.ctx(ctx), &adminv1.UpdateContextPolicyRequest{Org: org, Project: project,
		Policy: &adminv1.ContextPolicy{PrivateAttributes: set}})
	return res.GetPolicy(), err
}
