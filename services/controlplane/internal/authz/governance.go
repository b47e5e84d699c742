package authz

import (
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Governance says how a write RPC is governed against the four-eyes rule: in an
// environment that requires approvals ("protected"), no single member, whatever
// their role and whichever API they use, can change what that environment serves,
// except an emergency off where the environment allows it.
type Governance int

// The governance decisions. Every write RPC of the admin API has exactly one
// (GovernanceTable); a write RPC without one fails TestEveryWriteRPCHasAGovernanceDecision.
const (
	// NotServing: the RPC cannot change what any environment serves (names,
	// descriptions, credentials, webhooks, creating things nothing serves yet).
	NotServing Governance = iota + 1
	// ViaChangeRequest: in a protected environment the RPC saves nothing and opens a
	// change request (returned in the response's change_request), applied only with
	// the environment's approvals.
	ViaChangeRequest
	// RefusedWhenServing: the RPC is refused with FAILED_PRECONDITION when it would
	// change what a protected environment serves; the message says how to proceed
	// (a change request, or lowering the protection, which itself needs another
	// admin's approval).
	RefusedWhenServing
	// EmergencyOnly: the RPC only turns flags off; in a protected environment it is
	// allowed only where emergency_off_allowed is true (else FAILED_PRECONDITION,
	// and nothing changes in any environment).
	EmergencyOnly
	// Weakening: the RPC changes governance itself. Making it stricter applies at
	// once; weakening it (approvals off, fewer approvals, emergency off allowed)
	// opens a change request that only another admin of the environment may approve.
	Weakening
	// Review: the four-eyes process itself (approve, reject, apply...), governed by
	// package governance: never the author, never a token minted by the author,
	// never a member who got their rights after the request was opened.
	Review
	// Membership: who may act. Audited and announced by webhook; rights granted
	// after a change request was opened do not count for that request.
	Membership
	// ApprovedPlan: the RPC moves a release plan whose whole content (flag, steps,
	// guardrails, breach action) a change request approved: start, pause, resume,
	// roll back, cancel. It cannot change that content, and in a protected
	// environment a plan without an approved change request is refused.
	ApprovedPlan
)

// String names the decision as docs/governance.md does.
func (g Governance) String() string {
	switch g {
	case NotServing:
		return "not serving"
	case ViaChangeRequest:
		return "change request"
	case RefusedWhenServing:
		return "refused when serving"
	case EmergencyOnly:
		return "emergency"
	case Weakening:
		return "weakening needs another admin"
	case Review:
		return "review"
	case Membership:
		return "membership"
	case ApprovedPlan:
		return "approved plan"
	default:
		return "undecided"
	}
}

// GovernanceTable holds the decision of every write RPC (Action Write or
// ManageOwners in Table). A new write RPC must be added here, with the
// enforcement its decision promises, and to the table in docs/governance.md:
// tests fail otherwise.
var GovernanceTable = map[string]Governance{
	adminv1.OrganizationService_CreateOrganization_FullMethodName: NotServing,
	adminv1.OrganizationService_UpdateOrganization_FullMethodName: NotServing,
	adminv1.OrganizationService_DeleteOrganization_FullMethodName: RefusedWhenServing,

	adminv1.ProjectService_CreateProject_FullMethodName: NotServing,
	adminv1.ProjectService_UpdateProject_FullMethodName: NotServing,
	// Private attributes change what leaves an evaluator, never a decision.
	adminv1.SeenContextService_UpdateContextPolicy_FullMethodName: NotServing,
	adminv1.ProjectService_DeleteProject_FullMethodName:           RefusedWhenServing,

	adminv1.EnvironmentService_CreateEnvironment_FullMethodName: NotServing,
	adminv1.EnvironmentService_UpdateEnvironment_FullMethodName: Weakening,
	adminv1.EnvironmentService_DeleteEnvironment_FullMethodName: RefusedWhenServing,

	adminv1.FlagService_CreateFlag_FullMethodName:       NotServing,
	adminv1.FlagService_UpdateFlag_FullMethodName:       RefusedWhenServing,
	adminv1.FlagService_ArchiveFlag_FullMethodName:      RefusedWhenServing,
	adminv1.FlagService_RestoreFlag_FullMethodName:      RefusedWhenServing,
	adminv1.FlagService_DeleteFlag_FullMethodName:       RefusedWhenServing,
	adminv1.FlagService_UpdateFlagConfig_FullMethodName: ViaChangeRequest,
	adminv1.FlagService_PatchFlagConfig_FullMethodName:  ViaChangeRequest,
	adminv1.FlagService_EmergencyOffFlag_FullMethodName: EmergencyOnly,
	adminv1.FlagService_KillFlag_FullMethodName:         EmergencyOnly,
	adminv1.FlagService_BulkWrite_FullMethodName:        RefusedWhenServing,

	adminv1.SegmentService_CreateSegment_FullMethodName: RefusedWhenServing,
	adminv1.SegmentService_UpdateSegment_FullMethodName: ViaChangeRequest,

	adminv1.HistoryService_RevertFlagConfig_FullMethodName:    ViaChangeRequest,
	adminv1.HistoryService_RevertSegment_FullMethodName:       ViaChangeRequest,
	adminv1.HistoryService_RollbackEnvironment_FullMethodName: ViaChangeRequest,
	adminv1.SegmentService_DeleteSegment_FullMethodName:       RefusedWhenServing,

	adminv1.MemberService_CreateMember_FullMethodName: Membership,
	adminv1.MemberService_UpdateMember_FullMethodName: Membership,
	adminv1.MemberService_DeleteMember_FullMethodName: Membership,
	adminv1.MemberService_GrantRole_FullMethodName:    Membership,
	adminv1.MemberService_RevokeRole_FullMethodName:   Membership,

	adminv1.ApiTokenService_CreateApiToken_FullMethodName: Membership,
	adminv1.ApiTokenService_RevokeApiToken_FullMethodName: Membership,

	adminv1.SdkKeyService_CreateSdkKey_FullMethodName: NotServing,
	adminv1.SdkKeyService_RotateSdkKey_FullMethodName: NotServing,
	adminv1.SdkKeyService_RevokeSdkKey_FullMethodName: NotServing,

	adminv1.ChangeRequestService_CreateChangeRequest_FullMethodName:   Review,
	adminv1.ChangeRequestService_UpdateChangeRequest_FullMethodName:   Review,
	adminv1.ChangeRequestService_ApproveChangeRequest_FullMethodName:  Review,
	adminv1.ChangeRequestService_RejectChangeRequest_FullMethodName:   Review,
	adminv1.ChangeRequestService_ApplyChangeRequest_FullMethodName:    Review,
	adminv1.ChangeRequestService_WithdrawChangeRequest_FullMethodName: Review,
	adminv1.ChangeRequestService_CommentChangeRequest_FullMethodName:  Review,

	adminv1.ScheduleService_CreateScheduledChange_FullMethodName: ViaChangeRequest,
	adminv1.ScheduleService_CancelScheduledChange_FullMethodName: NotServing,

	adminv1.ReleasePlanService_CreateReleasePlan_FullMethodName:   ViaChangeRequest,
	adminv1.ReleasePlanService_UpdateReleasePlan_FullMethodName:   ViaChangeRequest,
	adminv1.ReleasePlanService_StartReleasePlan_FullMethodName:    ApprovedPlan,
	adminv1.ReleasePlanService_PauseReleasePlan_FullMethodName:    ApprovedPlan,
	adminv1.ReleasePlanService_ResumeReleasePlan_FullMethodName:   ApprovedPlan,
	adminv1.ReleasePlanService_RollbackReleasePlan_FullMethodName: ApprovedPlan,
	adminv1.ReleasePlanService_CancelReleasePlan_FullMethodName:   ApprovedPlan,

	adminv1.WebhookService_CreateWebhook_FullMethodName:            NotServing,
	adminv1.WebhookService_UpdateWebhook_FullMethodName:            NotServing,
	adminv1.WebhookService_DeleteWebhook_FullMethodName:            NotServing,
	adminv1.WebhookService_EnableWebhook_FullMethodName:            NotServing,
	adminv1.WebhookService_SendTestWebhook_FullMethodName:          NotServing,
	adminv1.WebhookService_RedeliverWebhookDelivery_FullMethodName: NotServing,
}

// GovernanceOf returns the decision of a write RPC; ok is false for a method
// that has none (a read, or an undecided write, which tests refuse).
func GovernanceOf(fullMethod string) (Governance, bool) {
	g, ok := GovernanceTable[fullMethod]
	return g, ok
}
