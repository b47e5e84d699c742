package server

import (
	"context"
	"fmt"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/lifecycle"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// Audit actions the flag service names itself (the store names the others).
const (
	actionEmergencyOff = "flag_config.emergency_off"
	actionKill         = "flag.kill"
)

// FlagService implements adminv1.FlagServiceServer.
type FlagService struct {
	adminv1.UnimplementedFlagServiceServer
	// impact previews dry runs (nil: their impact is unset).
	impact Previewer
	store  interface {
		store.Flags
		GetEnvironment(ctx context.Context, ref store.EnvRef) (*adminv1.Environment, error)
		ListEnvironments(ctx context.Context, ref store.ProjectRef, p store.Page) ([]*adminv1.Environment, string, error)
		GetSegment(ctx context.Context, ref store.EnvRef, key string) (*manifestv1.Segment, error)
	}
	// gov creates change requests and kills in one transaction (nil: approval-
	// protected updates are refused; kill goes environment by environment).
	gov interface {
		changeRequests
		KillFlag(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, flag string) ([]*adminv1.FlagEnvironmentConfig, error)
	}
	now  func() time.Time
	life lifecycle.Config
}

func (c *checks) flagDefinition(field string, f *adminv1.Flag) {
	c.text(field+".name", f.GetName(), maxName, false)
	c.text(field+".description", f.GetDescription(), maxDescription, false)
	c.text(field+".owner", f.GetOwner(), maxName, false)
	if len(f.GetTags()) > maxTags {
		c.fail(field+".tags", "at most %d tags", maxTags)
	}
	for i, t := range f.GetTags() {
		c.key(idx(field+".tags", i), t)
	}
	seen := map[string]bool{}
	for i, v := range f.GetVariants() {
		p := idx(field+".variants", i)
		c.key(p+".key", v.GetKey())
		if seen[v.GetKey()] {
			c.fail(p+".key", "duplicate variant %q", v.GetKey())
		}
		seen[v.GetKey()] = true
		c.text(p+".name", v.GetName(), maxName, false)
		c.text(p+".description", v.GetDescription(), maxDescription, false)
		if msg := valueTypeProblem(f.GetType(), v.GetValue()); msg != "" {
			c.fail(p+".value", "%s", msg)
		}
	}
	switch f.GetType() {
	case manifestv1.FlagType_FLAG_TYPE_UNSPECIFIED:
		c.fail(field+".type", "is required")
	case manifestv1.FlagType_FLAG_TYPE_BOOLEAN:
		if n := len(f.GetVariants()); n != 0 && n != 2 {
			c.fail(field+".variants", "a boolean flag has no variants (on/off) or exactly two")
		}
	default:
		if len(f.GetVariants()) == 0 {
			c.fail(field+".variants", "at least one variant is required")
		}
	}
	if f.GetTemporary() && f.GetExpiresAt() == nil {
		c.fail(field+".expires_at", "is required for a temporary flag")
	}
}

// booleanVariants are the variants of a boolean flag created without any.
func booleanVariants() []*manifestv1.Variant {
	return []*manifestv1.Variant{
		{Key: "on", Value: structpb.NewBoolValue(true)},
		{Key: "off", Value: structpb.NewBoolValue(false)},
	}
}

// offVariant is what a new flag serves: the false variant of a boolean flag
// ("off" by default), the first variant otherwise.
func offVariant(f *adminv1.Flag) string {
	if f.GetType() == manifestv1.FlagType_FLAG_TYPE_BOOLEAN {
		for _, v := range f.GetVariants() {
			if b, ok := v.GetValue().GetKind().(*structpb.Value_BoolValue); ok && !b.BoolValue {
				return v.GetKey()
			}
		}
	}
	if len(f.GetVariants()) == 0 {
		return ""
	}
	return f.GetVariants()[0].GetKey()
}

// checkFlag validates flag key as the environment will carry it, naming request
// fields with field. An archived flag is not in the environment's manifest, so
// there is nothing to check it against: with archivedOK the write goes through
// unchecked (definition edits), otherwise it is refused (configurations of an
// archived flag cannot change until it is restored).
func checkFlag(key string, field func(string) string, archivedOK bool) store.Check {
	return func(env store.EnvView) error {
		f, ok := env.Flag(key)
		if !ok {
			if archivedOK {
				return nil
			}
			return errs.E(errs.FailedPrecondition, "flag %q is archived: restore it first", key)
		}
		return validationError(validateFlag(f, env), field)
	}
}

// CreateFlag creates a flag; in every environment it starts off, serving its off
// variant.
func (s *FlagService) CreateFlag(ctx context.Context, req *adminv1.CreateFlagRequest) (*adminv1.CreateFlagResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.present("flag", req.GetFlag() == nil)
	c.key("flag.key", req.GetFlag().GetKey())
	c.flagDefinition("flag", req.GetFlag())
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	in := req.GetFlag()
	f := &adminv1.Flag{
		Key: in.GetKey(), Name: in.GetName(), Description: in.GetDescription(), Type: in.GetType(),
		Variants: in.GetVariants(), Tags: in.GetTags(), Owner: in.GetOwner(), ClientVisible: in.GetClientVisible(),
		Temporary: in.GetTemporary(), ExpiresAt: in.GetExpiresAt(),
	}
	if f.Name == "" {
		f.Name = f.Key
	}
	if f.Type == manifestv1.FlagType_FLAG_TYPE_BOOLEAN && len(f.Variants) == 0 {
		f.Variants = booleanVariants()
	}
	if len(req.GetConfigs()) > 0 {
		return s.createWithConfigs(ctx, req, f, idem)
	}
	off := offVariant(f)
	initial := &manifestv1.FlagConfig{On: false, OffVariant: off, DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: off}}}
	out, err := s.store.CreateFlag(ctx, meta(ctx, idem, "", ""), store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, f, initial, checkFlag(f.Key, under("flag"), false))
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateFlagResponse{Flag: out}, nil
}

// GetFlag reads a flag's definition.
func (s *FlagService) GetFlag(ctx context.Context, req *adminv1.GetFlagRequest) (*adminv1.GetFlagResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("flag", req.GetFlag())
	if c.err != nil {
		return nil, c.err
	}
	f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, req.GetFlag())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetFlagResponse{Flag: f}, nil
}

// UpdateFlag replaces a flag's definition; key and type cannot change.
func (s *FlagService) UpdateFlag(ctx context.Context, req *adminv1.UpdateFlagRequest) (*adminv1.UpdateFlagResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("flag", req.GetFlag())
	c.present("definition", req.GetDefinition() == nil)
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	ref := store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}
	cur, err := s.store.GetFlag(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	in := req.GetDefinition()
	if in.GetKey() != "" && in.GetKey() != cur.GetKey() {
		return nil, errs.Invalid("definition.key", "cannot change (is %q)", cur.GetKey())
	}
	if in.GetType() != manifestv1.FlagType_FLAG_TYPE_UNSPECIFIED && in.GetType() != cur.GetType() {
		return nil, errs.Invalid("definition.type", "cannot change (is %s)", cur.GetType())
	}
	f := &adminv1.Flag{
		Key: cur.GetKey(), Type: cur.GetType(), Name: in.GetName(), Description: in.GetDescription(),
		Variants: in.GetVariants(), Tags: in.GetTags(), Owner: in.GetOwner(), ClientVisible: in.GetClientVisible(),
		Temporary: in.GetTemporary(), ExpiresAt: in.GetExpiresAt(), Archived: cur.GetArchived(),
	}
	if f.Name == "" {
		f.Name = cur.GetName()
	}
	if len(f.Variants) == 0 {
		f.Variants = cur.GetVariants()
	}
	c.flagDefinition("definition", f)
	if c.err != nil {
		return nil, c.err
	}
	out, err := s.store.UpdateFlag(ctx, meta(ctx, "", "", ""), ref, f, req.GetRevision(), checkFlag(f.Key, under("definition"), true))
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateFlagResponse{Flag: out}, nil
}

func (s *FlagService) setArchived(ctx context.Context, org, project, flag string, revision int64, archived bool) (*adminv1.Flag, error) {
	var c checks
	c.key("org", org)
	c.key("project", project)
	c.key("flag", flag)
	c.revision("revision", revision)
	if c.err != nil {
		return nil, c.err
	}
	return s.store.SetFlagArchived(ctx, meta(ctx, "", "", ""), store.ProjectRef{Org: org, Project: project}, flag, archived, revision)
}

// ArchiveFlag archives a flag: it leaves every manifest.
func (s *FlagService) ArchiveFlag(ctx context.Context, req *adminv1.ArchiveFlagRequest) (*adminv1.ArchiveFlagResponse, error) {
	f, err := s.setArchived(ctx, req.GetOrg(), req.GetProject(), req.GetFlag(), req.GetRevision(), true)
	if err != nil {
		return nil, err
	}
	return &adminv1.ArchiveFlagResponse{Flag: f}, nil
}

// RestoreFlag undoes ArchiveFlag.
func (s *FlagService) RestoreFlag(ctx context.Context, req *adminv1.RestoreFlagRequest) (*adminv1.RestoreFlagResponse, error) {
	f, err := s.setArchived(ctx, req.GetOrg(), req.GetProject(), req.GetFlag(), req.GetRevision(), false)
	if err != nil {
		return nil, err
	}
	return &adminv1.RestoreFlagResponse{Flag: f}, nil
}

// DeleteFlag deletes a flag for good (refused while another flag requires it).
func (s *FlagService) DeleteFlag(ctx context.Context, req *adminv1.DeleteFlagRequest) (*adminv1.DeleteFlagResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("flag", req.GetFlag())
	c.revision("revision", req.GetRevision())
	if c.err != nil {
		return nil, c.err
	}
	if err := s.store.DeleteFlag(ctx, meta(ctx, "", "", ""), store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, req.GetFlag(), req.GetRevision()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteFlagResponse{}, nil
}

func envRef(c *checks, org, project, env string) store.EnvRef {
	c.key("org", org)
	c.key("project", project)
	c.key("environment", env)
	return store.EnvRef{Org: org, Project: project, Environment: env}
}

// GetFlagConfig reads a flag's configuration in one environment.
func (s *FlagService) GetFlagConfig(ctx context.Context, req *adminv1.GetFlagConfigRequest) (*adminv1.GetFlagConfigResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	if c.err != nil {
		return nil, c.err
	}
	fc, err := s.store.GetFlagConfig(ctx, ref, req.GetFlag())
	if err != nil {
		return nil, err
	}
	f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag())
	if err != nil {
		return nil, err
	}
	s.withStatus(f, fc)
	return &adminv1.GetFlagConfigResponse{Config: fc}, nil
}

// ListFlagConfigs lists every flag's configuration in one environment.
func (s *FlagService) ListFlagConfigs(ctx context.Context, req *adminv1.ListFlagConfigsRequest) (*adminv1.ListFlagConfigsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	fcs, next, err := s.store.ListFlagConfigs(ctx, ref, page)
	if err != nil {
		return nil, err
	}
	for _, fc := range fcs {
		f, err := s.store.GetFlag(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, fc.GetFlag())
		if err != nil {
			return nil, err
		}
		s.withStatus(f, fc)
	}
	return &adminv1.ListFlagConfigsResponse{Configs: fcs, NextPageToken: next}, nil
}

// UpdateFlagConfig replaces a flag's configuration in one environment after the
// engine validated it against the environment. In an environment that requires
// approvals it saves nothing and creates a change request instead (returned in
// the response; the revision sent is its base revision).
func (s *FlagService) UpdateFlagConfig(ctx context.Context, req *adminv1.UpdateFlagConfigRequest) (*adminv1.UpdateFlagConfigResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.present("config", req.GetConfig() == nil)
	c.revision("revision", req.GetRevision())
	c.text("comment", req.GetComment(), maxComment, false)
	if c.err != nil {
		return nil, c.err
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	if isDryRun(ctx, req.GetDryRun()) {
		return s.dryRunFlagConfig(ctx, ref, env, req)
	}
	if env.GetSettings().GetApprovalsRequired() {
		if s.gov == nil {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals: changes go through change requests", ref.Environment)
		}
		pc := &adminv1.ProposedChange{Change: &adminv1.ProposedChange_FlagConfig{FlagConfig: &adminv1.FlagConfigChange{
			Flag: req.GetFlag(), Config: req.GetConfig()}}}
		cr, err := propose(ctx, s.gov, ref, env, pc, req.GetRevision(), req.GetComment(), "")
		if err != nil {
			return nil, err
		}
		return &adminv1.UpdateFlagConfigResponse{ChangeRequest: cr}, nil
	}
	fc, err := s.store.UpdateFlagConfig(ctx, meta(ctx, "", req.GetComment(), ""), ref, req.GetFlag(), req.GetConfig(), req.GetRevision(), checkFlag(req.GetFlag(), configField, false))
	if err != nil {
		return nil, err
	}
	s.fillStatus(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag(), fc)
	return &adminv1.UpdateFlagConfigResponse{Config: fc}, nil
}

// turnOff turns the flag off in one environment (no write when it already is).
func (s *FlagService) turnOff(ctx context.Context, ref store.EnvRef, flag string, m store.WriteMeta) (*adminv1.FlagEnvironmentConfig, error) {
	var out *adminv1.FlagEnvironmentConfig
	err := retryStale(func() error {
		cur, err := s.store.GetFlagConfig(ctx, ref, flag)
		if err != nil {
			return err
		}
		if !cur.GetConfig().GetOn() {
			out = cur
			return nil
		}
		cfg := proto.CloneOf(cur.GetConfig())
		cfg.On = false
		// Turning off cannot make a valid configuration invalid: no check.
		out, err = s.store.UpdateFlagConfig(ctx, m, ref, flag, cfg, cur.GetRevision(), nil)
		return err
	})
	return out, err
}

// EmergencyOffFlag turns a flag off in one environment, with a reason, even where
// approvals are required, when the environment allows emergency off.
func (s *FlagService) EmergencyOffFlag(ctx context.Context, req *adminv1.EmergencyOffFlagRequest) (*adminv1.EmergencyOffFlagResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.key("flag", req.GetFlag())
	c.text("reason", req.GetReason(), maxComment, true)
	if c.err != nil {
		return nil, c.err
	}
	env, err := s.store.GetEnvironment(ctx, ref)
	if err != nil {
		return nil, err
	}
	if st := env.GetSettings(); st.GetApprovalsRequired() && !st.GetEmergencyOffAllowed() {
		return nil, errs.E(errs.FailedPrecondition, "environment %q does not allow emergency off", ref.Environment)
	}
	fc, err := s.turnOff(ctx, ref, req.GetFlag(), meta(ctx, "", req.GetReason(), actionEmergencyOff))
	if err != nil {
		return nil, err
	}
	s.fillStatus(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project}, req.GetFlag(), fc)
	return &adminv1.EmergencyOffFlagResponse{Config: fc}, nil
}

// KillFlag turns a flag off in every environment of its project. The caller must
// be allowed to write flag configurations in each of them (checked before any
// change). With a governance store every environment changes in ONE transaction;
// otherwise one after the other. Kill is an emergency action: it needs no
// approval (audited as flag.kill, announced with emergency=true), but it is
// refused as a whole where the flag is on in an environment that requires
// approvals and does not allow emergency off.
func (s *FlagService) KillFlag(ctx context.Context, req *adminv1.KillFlagRequest) (*adminv1.KillFlagResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.key("project", req.GetProject())
	c.key("flag", req.GetFlag())
	c.text("reason", req.GetReason(), maxComment, true)
	if c.err != nil {
		return nil, c.err
	}
	pref := store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}
	if _, err := s.store.GetFlag(ctx, pref, req.GetFlag()); err != nil {
		return nil, err
	}
	var envs []*adminv1.Environment
	for page := (store.Page{Size: maxPageSize}); ; {
		es, next, err := s.store.ListEnvironments(ctx, pref, page)
		if err != nil {
			return nil, err
		}
		envs = append(envs, es...)
		if next == "" {
			break
		}
		page.Token = next
	}
	p := actor.PrincipalFrom(ctx)
	for _, e := range envs {
		if st := e.GetSettings(); s.gov == nil && st.GetApprovalsRequired() && !st.GetEmergencyOffAllowed() {
			return nil, errs.E(errs.FailedPrecondition, "environment %q requires approvals and does not allow emergency off: nothing was killed", e.GetKey())
		}
		if err := authz.Check(p, authz.Scope{Org: pref.Org, Project: pref.Project, Environment: e.GetKey()}, authz.FlagConfig, authz.Write); err != nil {
			return nil, fmt.Errorf("environment %s: %w", e.GetKey(), err)
		}
	}
	m := meta(ctx, "", req.GetReason(), actionKill)
	if s.gov != nil {
		out, err := s.gov.KillFlag(ctx, m, pref, req.GetFlag())
		if err != nil {
			return nil, err
		}
		s.fillStatus(ctx, pref, req.GetFlag(), out...)
		return &adminv1.KillFlagResponse{Configs: out}, nil
	}
	out := make([]*adminv1.FlagEnvironmentConfig, 0, len(envs))
	for _, e := range envs {
		fc, err := s.turnOff(ctx, store.EnvRef{Org: pref.Org, Project: pref.Project, Environment: e.GetKey()}, req.GetFlag(), m)
		if err != nil {
			return nil, fmt.Errorf("environment %s: %w", e.GetKey(), err)
		}
		out = append(out, fc)
	}
	s.fillStatus(ctx, pref, req.GetFlag(), out...)
	return &adminv1.KillFlagResponse{Configs: out}, nil
}

// fillStatus fills the lifecycle status of configurations just written. The write
// has committed, so a failure to read the flag leaves the status unset rather than
// failing the call.
func (s *FlagService) fillStatus(ctx context.Context, ref store.ProjectRef, flag string, fcs ...*adminv1.FlagEnvironmentConfig) {
	f, err := s.store.GetFlag(ctx, ref, flag)
	if err != nil {
		return
	}
	s.withStatus(f, fcs...)
}

// withStatus fills the lifecycle status of configurations of flag f.
func (s *FlagService) withStatus(f *adminv1.Flag, fcs ...*adminv1.FlagEnvironmentConfig) {
	now := s.clock()
	for _, fc := range fcs {
		fc.Status = s.life.Status(f, fc, now)
	}
}

func (s *FlagService) clock() time.Time {
	if s.now == nil {
		return time.Now().UTC()
	}
	return s.now().UTC()
}

// ListStaleFlags lists the configurations whose lifecycle status is stale in one
// environment (thresholds: lifecycle.Config), by flag key. A page may hold fewer
// than page_size entries; follow next_page_token until it is empty.
func (s *FlagService) ListStaleFlags(ctx context.Context, req *adminv1.ListStaleFlagsRequest) (*adminv1.ListStaleFlagsResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	if _, err := s.store.GetEnvironment(ctx, ref); err != nil {
		return nil, err
	}
	want := page.Size
	if want <= 0 {
		want = 50
	}
	pref := store.ProjectRef{Org: ref.Org, Project: ref.Project}
	var out []*adminv1.FlagEnvironmentConfig
	next := page.Token
	for {
		fs, tok, err := s.store.ListFlags(ctx, pref, store.FlagFilter{}, store.Page{Size: want, Token: next})
		if err != nil {
			return nil, err
		}
		for _, f := range fs {
			fc, err := s.store.GetFlagConfig(ctx, ref, f.GetKey())
			if err != nil {
				return nil, err
			}
			s.withStatus(f, fc)
			if fc.GetStatus() == adminv1.FlagStatus_FLAG_STATUS_STALE {
				out = append(out, fc)
			}
		}
		next = tok
		if next == "" || len(out) >= want {
			break
		}
	}
	return &adminv1.ListStaleFlagsResponse{Configs: out, NextPageToken: next}, nil
}
