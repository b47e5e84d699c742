package authz

import (
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Level says how deep into the tenancy tree an RPC's resource lives, and therefore
// which request fields name it.
type Level int

// The levels.
const (
	// LevelCaller: the request names no organization; the caller's own is used.
	LevelCaller Level = iota
	// LevelOrg: the request's org field.
	LevelOrg
	// LevelProject: its org and project fields.
	LevelProject
	// LevelEnvironment: its org, project and environment fields.
	LevelEnvironment
)

// Rule declares what one RPC touches.
type Rule struct {
	Kind   Kind
	Action Action
	Level  Level
	// ScopeOf, when set, reads the scope instead of Level (for requests whose scope
	// is a nested message, like a role binding's).
	ScopeOf func(req any) Scope
	// ActionOf, when set, refines Action from the request (granting the owner role
	// needs more than granting any other).
	ActionOf func(req any) Action
}

// Scope reads the scope of req per the rule; callerOrg is used at LevelCaller.
func (r Rule) Scope(req any, callerOrg string) Scope {
	if r.ScopeOf != nil {
		return r.ScopeOf(req)
	}
	var s Scope
	if r.Level == LevelCaller {
		s.Org = callerOrg
		return s
	}
	if v, ok := req.(interface{ GetOrg() string }); ok {
		s.Org = v.GetOrg()
	}
	if r.Level >= LevelProject {
		if v, ok := req.(interface{ GetProject() string }); ok {
			s.Project = v.GetProject()
		}
	}
	if r.Level >= LevelEnvironment {
		if v, ok := req.(interface{ GetEnvironment() string }); ok {
			s.Environment = v.GetEnvironment()
		}
	}
	return s
}

// ActionFor returns the action req performs.
func (r Rule) ActionFor(req any) Action {
	if r.ActionOf != nil {
		return r.ActionOf(req)
	}
	return r.Action
}

// Lookup returns the rule of a gRPC full method name; ok is false for a method the
// table does not declare, which callers must deny.
func Lookup(fullMethod string) (Rule, bool) {
	r, ok := Table[fullMethod]
	return r, ok
}

func bindingScope(req any) Scope {
	r := req.(*adminv1.GrantRoleRequest)
	return Scope{Org: r.GetOrg(), Project: r.GetBinding().GetScope().GetProject(), Environment: r.GetBinding().GetScope().GetEnvironment()}
}

func revokeScope(req any) Scope {
	r := req.(*adminv1.RevokeRoleRequest)
	return Scope{Org: r.GetOrg(), Project: r.GetScope().GetProject(), Environment: r.GetScope().GetEnvironment()}
}

func grantAction(req any) Action {
	if req.(*adminv1.GrantRoleRequest).GetBinding().GetRole() == adminv1.Role_ROLE_OWNER {
		return ManageOwners
	}
	return Write
}

// requestScope reads org, project and environment from the request, whatever
// is set (PermissionService asks about any level).
func requestScope(req any) Scope {
	r := req.(*adminv1.GetMyPermissionsRequest)
	return Scope{Org: r.GetOrg(), Project: r.GetProject(), Environment: r.GetEnvironment()}
}

// Table declares every RPC the admin API serves. A method that is not here is
// denied by the access interceptor.
var Table = map[string]Rule{
	adminv1.OrganizationService_CreateOrganization_FullMethodName: {Kind: Organization, Action: Write, Level: LevelCaller},
	adminv1.OrganizationService_GetOrganization_FullMethodName:    {Kind: Organization, Action: Read, Level: LevelOrg},
	adminv1.OrganizationService_ListOrganizations_FullMethodName:  {Kind: Organization, Action: Read, Level: LevelCaller},
	adminv1.OrganizationService_UpdateOrganization_FullMethodName: {Kind: Organization, Action: Write, Level: LevelOrg},
	adminv1.OrganizationService_DeleteOrganization_FullMethodName: {Kind: Organization, Action: ManageOwners, Level: LevelOrg},

	adminv1.ProjectService_CreateProject_FullMethodName: {Kind: Project, Action: Write, Level: LevelOrg},
	adminv1.ProjectService_GetProject_FullMethodName:    {Kind: Project, Action: Read, Level: LevelProject},
	adminv1.ProjectService_ListProjects_FullMethodName:  {Kind: Project, Action: Read, Level: LevelOrg},
	adminv1.ProjectService_UpdateProject_FullMethodName: {Kind: Project, Action: Write, Level: LevelProject},
	adminv1.ProjectService_DeleteProject_FullMethodName: {Kind: Project, Action: Write, Level: LevelProject},

	adminv1.EnvironmentService_CreateEnvironment_FullMethodName: {Kind: Environment, Action: Write, Level: LevelProject},
	adminv1.EnvironmentService_GetEnvironment_FullMethodName:    {Kind: Environment, Action: Read, Level: LevelEnvironment},
	adminv1.EnvironmentService_ListEnvironments_FullMethodName:  {Kind: Environment, Action: Read, Level: LevelProject},
	adminv1.EnvironmentService_UpdateEnvironment_FullMethodName: {Kind: Environment, Action: Write, Level: LevelEnvironment},
	adminv1.EnvironmentService_DeleteEnvironment_FullMethodName: {Kind: Environment, Action: Write, Level: LevelEnvironment},

	adminv1.FlagService_CreateFlag_FullMethodName:         {Kind: Flag, Action: Write, Level: LevelProject},
	adminv1.FlagService_GetFlag_FullMethodName:            {Kind: Flag, Action: Read, Level: LevelProject},
	adminv1.FlagService_ListFlags_FullMethodName:          {Kind: Flag, Action: Read, Level: LevelProject},
	adminv1.FlagService_UpdateFlag_FullMethodName:         {Kind: Flag, Action: Write, Level: LevelProject},
	adminv1.FlagService_ArchiveFlag_FullMethodName:        {Kind: Flag, Action: Write, Level: LevelProject},
	adminv1.FlagService_RestoreFlag_FullMethodName:        {Kind: Flag, Action: Write, Level: LevelProject},
	adminv1.FlagService_DeleteFlag_FullMethodName:         {Kind: Flag, Action: Write, Level: LevelProject},
	adminv1.FlagService_ValidateFlagConfig_FullMethodName: {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.FlagService_GetFlagConfig_FullMethodName:      {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.FlagService_ListFlagConfigs_FullMethodName:    {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.FlagService_UpdateFlagConfig_FullMethodName:   {Kind: FlagConfig, Action: Write, Level: LevelEnvironment},
	adminv1.FlagService_EmergencyOffFlag_FullMethodName:   {Kind: FlagConfig, Action: Write, Level: LevelEnvironment},
	adminv1.FlagService_PatchFlagConfig_FullMethodName:    {Kind: FlagConfig, Action: Write, Level: LevelEnvironment},
	// KillFlag is checked here at project level and again per environment by the
	// service, so an environment-level downgrade still holds.
	adminv1.FlagService_KillFlag_FullMethodName:       {Kind: FlagConfig, Action: Write, Level: LevelProject},
	adminv1.FlagService_ListStaleFlags_FullMethodName: {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.FlagService_BulkWrite_FullMethodName:      {Kind: FlagConfig, Action: Write, Level: LevelProject},

	adminv1.SegmentService_CreateSegment_FullMethodName: {Kind: Segment, Action: Write, Level: LevelEnvironment},
	adminv1.SegmentService_GetSegment_FullMethodName:    {Kind: Segment, Action: Read, Level: LevelEnvironment},
	adminv1.SegmentService_ListSegments_FullMethodName:  {Kind: Segment, Action: Read, Level: LevelEnvironment},
	adminv1.SegmentService_UpdateSegment_FullMethodName: {Kind: Segment, Action: Write, Level: LevelEnvironment},
	adminv1.SegmentService_DeleteSegment_FullMethodName: {Kind: Segment, Action: Write, Level: LevelEnvironment},

	adminv1.MemberService_CreateMember_FullMethodName:     {Kind: Member, Action: Write, Level: LevelOrg},
	adminv1.MemberService_GetMember_FullMethodName:        {Kind: Member, Action: Read, Level: LevelOrg},
	adminv1.MemberService_ListMembers_FullMethodName:      {Kind: Member, Action: Read, Level: LevelOrg},
	adminv1.MemberService_UpdateMember_FullMethodName:     {Kind: Member, Action: Write, Level: LevelOrg},
	adminv1.MemberService_DeleteMember_FullMethodName:     {Kind: Member, Action: Write, Level: LevelOrg},
	adminv1.MemberService_GrantRole_FullMethodName:        {Kind: RoleBinding, Action: Write, ScopeOf: bindingScope, ActionOf: grantAction},
	adminv1.MemberService_RevokeRole_FullMethodName:       {Kind: RoleBinding, Action: Write, ScopeOf: revokeScope},
	adminv1.MemberService_ListRoleBindings_FullMethodName: {Kind: RoleBinding, Action: Read, Level: LevelOrg},

	adminv1.ApiTokenService_CreateApiToken_FullMethodName: {Kind: APIToken, Action: Write, Level: LevelOrg},
	adminv1.ApiTokenService_ListApiTokens_FullMethodName:  {Kind: APIToken, Action: Read, Level: LevelOrg},
	adminv1.ApiTokenService_RevokeApiToken_FullMethodName: {Kind: APIToken, Action: Write, Level: LevelOrg},

	adminv1.SdkKeyService_CreateSdkKey_FullMethodName: {Kind: SDKKey, Action: Write, Level: LevelEnvironment},
	adminv1.SdkKeyService_ListSdkKeys_FullMethodName:  {Kind: SDKKey, Action: Read, Level: LevelEnvironment},
	adminv1.SdkKeyService_RotateSdkKey_FullMethodName: {Kind: SDKKey, Action: Write, Level: LevelEnvironment},
	adminv1.SdkKeyService_RevokeSdkKey_FullMethodName: {Kind: SDKKey, Action: Write, Level: LevelEnvironment},

	adminv1.AuditService_ListAuditEntries_FullMethodName: {Kind: Audit, Action: Read, Level: LevelOrg},
	adminv1.AuditService_GetAuditEntry_FullMethodName:    {Kind: Audit, Action: Read, Level: LevelOrg},
	adminv1.AuditService_VerifyAuditChain_FullMethodName: {Kind: Audit, Action: Read, Level: LevelOrg},

	adminv1.UsageService_GetFlagUsage_FullMethodName:    {Kind: Usage, Action: Read, Level: LevelEnvironment},
	adminv1.UsageService_GetProjectUsage_FullMethodName: {Kind: Usage, Action: Read, Level: LevelEnvironment},

	// History: reading revisions is reading configurations; a revert or a
	// rollback is a write of them (RollbackEnvironment also checks Segment write).
	adminv1.HistoryService_ListFlagConfigRevisions_FullMethodName: {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.HistoryService_DiffFlagConfigRevisions_FullMethodName: {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.HistoryService_RevertFlagConfig_FullMethodName:        {Kind: FlagConfig, Action: Write, Level: LevelEnvironment},
	adminv1.HistoryService_ListSegmentRevisions_FullMethodName:    {Kind: Segment, Action: Read, Level: LevelEnvironment},
	adminv1.HistoryService_DiffSegmentRevisions_FullMethodName:    {Kind: Segment, Action: Read, Level: LevelEnvironment},
	adminv1.HistoryService_RevertSegment_FullMethodName:           {Kind: Segment, Action: Write, Level: LevelEnvironment},
	adminv1.HistoryService_RollbackEnvironment_FullMethodName:     {Kind: FlagConfig, Action: Write, Level: LevelEnvironment},

	// A signed manifest is the environment's published content: reading it is
	// reading the environment.
	adminv1.ManifestService_GetSignedManifest_FullMethodName: {Kind: Environment, Action: Read, Level: LevelEnvironment},

	adminv1.ExplainService_ExplainFlag_FullMethodName: {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},

	// Seen contexts are what users sent: reading them is reading usage. The
	// private-attribute list is project configuration.
	adminv1.SeenContextService_ListSeenContexts_FullMethodName:    {Kind: Usage, Action: Read, Level: LevelEnvironment},
	adminv1.SeenContextService_GetContextPolicy_FullMethodName:    {Kind: Project, Action: Read, Level: LevelProject},
	adminv1.SeenContextService_UpdateContextPolicy_FullMethodName: {Kind: Project, Action: Write, Level: LevelProject},
	// A preview reads configurations and seen contexts and writes nothing.
	adminv1.ImpactService_PreviewImpact_FullMethodName:          {Kind: FlagConfig, Action: Read, Level: LevelEnvironment},
	adminv1.ImpactService_GetChangeRequestImpact_FullMethodName: {Kind: ChangeRequest, Action: Read, Level: LevelEnvironment},

	adminv1.ChangeRequestService_CreateChangeRequest_FullMethodName:   {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_GetChangeRequest_FullMethodName:      {Kind: ChangeRequest, Action: Read, Level: LevelEnvironment},
	adminv1.ChangeRequestService_ListChangeRequests_FullMethodName:    {Kind: ChangeRequest, Action: Read, Level: LevelEnvironment},
	adminv1.ChangeRequestService_UpdateChangeRequest_FullMethodName:   {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_ApproveChangeRequest_FullMethodName:  {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_RejectChangeRequest_FullMethodName:   {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_ApplyChangeRequest_FullMethodName:    {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_WithdrawChangeRequest_FullMethodName: {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},
	adminv1.ChangeRequestService_CommentChangeRequest_FullMethodName:  {Kind: ChangeRequest, Action: Write, Level: LevelEnvironment},

	adminv1.ScheduleService_CreateScheduledChange_FullMethodName:  {Kind: Schedule, Action: Write, Level: LevelEnvironment},
	adminv1.ScheduleService_GetScheduledChange_FullMethodName:     {Kind: Schedule, Action: Read, Level: LevelEnvironment},
	adminv1.ScheduleService_ListScheduledChanges_FullMethodName:   {Kind: Schedule, Action: Read, Level: LevelEnvironment},
	adminv1.ScheduleService_CancelScheduledChange_FullMethodName:  {Kind: Schedule, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_CreateReleasePlan_FullMethodName:   {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_GetReleasePlan_FullMethodName:      {Kind: ReleasePlan, Action: Read, Level: LevelEnvironment},
	adminv1.ReleasePlanService_ListReleasePlans_FullMethodName:    {Kind: ReleasePlan, Action: Read, Level: LevelEnvironment},
	adminv1.ReleasePlanService_UpdateReleasePlan_FullMethodName:   {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_StartReleasePlan_FullMethodName:    {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_PauseReleasePlan_FullMethodName:    {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_ResumeReleasePlan_FullMethodName:   {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_RollbackReleasePlan_FullMethodName: {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},
	adminv1.ReleasePlanService_CancelReleasePlan_FullMethodName:   {Kind: ReleasePlan, Action: Write, Level: LevelEnvironment},

	adminv1.WebhookService_CreateWebhook_FullMethodName:         {Kind: Webhook, Action: Write, Level: LevelProject},
	adminv1.WebhookService_GetWebhook_FullMethodName:            {Kind: Webhook, Action: Read, Level: LevelProject},
	adminv1.WebhookService_ListWebhooks_FullMethodName:          {Kind: Webhook, Action: Read, Level: LevelProject},
	adminv1.WebhookService_UpdateWebhook_FullMethodName:         {Kind: Webhook, Action: Write, Level: LevelProject},
	adminv1.WebhookService_DeleteWebhook_FullMethodName:         {Kind: Webhook, Action: Write, Level: LevelProject},
	adminv1.WebhookService_EnableWebhook_FullMethodName:         {Kind: Webhook, Action: Write, Level: LevelProject},
	adminv1.WebhookService_ListWebhookDeliveries_FullMethodName: {Kind: Webhook, Action: Read, Level: LevelProject},
	// Sending a test or a delivery again only reaches the URL an admin set.
	adminv1.WebhookService_SendTestWebhook_FullMethodName:          {Kind: Webhook, Action: Write, Level: LevelProject},
	adminv1.WebhookService_RedeliverWebhookDelivery_FullMethodName: {Kind: Webhook, Action: Write, Level: LevelProject},

	adminv1.PermissionService_GetMyPermissions_FullMethodName: {Kind: Self, Action: Read, ScopeOf: requestScope},
}
