// Package governance holds the four-eyes rules of change requests: the digest
// that binds an approval to the exact proposed content, who may approve, when a
// request may be applied, and what editing a request does to its approvals. It
// decides; the store persists (inside its transaction, via callbacks) and the
// server authenticates.
package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// Digest is the hex SHA-256 of the proposed content: the change (deterministic
// protobuf), the base revision and, for a schedule's request, the schedule's
// action and run time (extra). Approvals carry it; any edit changes it.
func Digest(change *adminv1.ProposedChange, baseRevision int64, extra ...proto.Message) string {
	h := sha256.New()
	b, _ := deterministic.Marshal(change)
	h.Write(b)
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(baseRevision, 10)))
	for _, m := range extra {
		h.Write([]byte{0})
		b, _ := deterministic.Marshal(m)
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Valid counts the approvals bound to the request's current digest.
func Valid(cr *adminv1.ChangeRequest) int32 {
	var n int32
	for _, a := range cr.GetApprovals() {
		if a.GetContentDigest() == cr.GetContentDigest() {
			n++
		}
	}
	return n
}

func open(cr *adminv1.ChangeRequest) error {
	if cr.GetState() != adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_OPEN {
		return errs.E(errs.FailedPrecondition, "change request %q is %s", cr.GetId(), cr.GetState())
	}
	return nil
}

// Approver is a member approving or applying a change request, with what the
// server knows about the credential and the rights it acts with.
type Approver struct {
	// Member is the member the credential acts as.
	Member string
	// Issuer is the member who minted the credential (an API token); empty or
	// Member for the member's own token or an OIDC login.
	Issuer string
	// Admin: the member may change the environment's settings (admin there).
	Admin bool
	// Since is when the member got the rights it acts with at the environment
	// (membership or the deciding role binding, whichever is newer); zero when
	// they predate what is recorded.
	Since time.Time
}

// impersonates reports whether a's credential was minted by the author of cr for
// another member: the author acting through someone else's identity.
func (a Approver) impersonates(cr *adminv1.ChangeRequest) bool {
	return a.Issuer != "" && a.Issuer != a.Member && a.Issuer == cr.GetAuthorId()
}

// Approve adds a's approval of digest. The author can never approve their own
// request, whatever their role, nor through a token they minted for another
// member; a member whose rights are newer than the request cannot approve it; a
// request that weakens the environment's settings needs an admin; the digest
// must be the current one (the content the approver saw); a member approves once.
func Approve(cr *adminv1.ChangeRequest, a Approver, digest, comment string, now *timestamppb.Timestamp) error {
	if err := open(cr); err != nil {
		return err
	}
	if a.Member == "" || a.Member == cr.GetAuthorId() {
		return errs.E(errs.PermissionDenied, "the author of a change request cannot approve it")
	}
	if a.impersonates(cr) {
		return errs.E(errs.PermissionDenied, "this API token was issued by the author of the change request for member %q: "+
			"the author cannot approve their own request through another member's identity", a.Member)
	}
	if a.Member == cr.GetAuthorIssuerId() {
		return errs.E(errs.PermissionDenied, "member %q minted the API token this change request was proposed with: "+
			"they cannot approve a request they may have written themselves", a.Member)
	}
	if _, ok := cr.GetChange().GetChange().(*adminv1.ProposedChange_EnvironmentSettings); ok && !a.Admin {
		return errs.E(errs.PermissionDenied, "this change request weakens the environment's governance: only another admin of the environment may approve it")
	}
	if !a.Since.IsZero() && cr.GetCreateTime() != nil && a.Since.After(cr.GetCreateTime().AsTime()) {
		return errs.E(errs.PermissionDenied, "member %q got the rights it approves with (%s) after this change request was opened (%s): "+
			"only members who could approve when it was opened may approve it", a.Member,
			a.Since.UTC().Format(time.RFC3339), cr.GetCreateTime().AsTime().UTC().Format(time.RFC3339))
	}
	if digest != cr.GetContentDigest() {
		return errs.E(errs.FailedPrecondition, "content_digest %q is not the request's current digest %q: the proposal changed, review it again", digest, cr.GetContentDigest())
	}
	for _, ap := range cr.GetApprovals() {
		if ap.GetMemberId() == a.Member && ap.GetContentDigest() == digest {
			return errs.E(errs.AlreadyExists, "member %q already approved this content", a.Member)
		}
	}
	cr.Approvals = append(cr.Approvals, &adminv1.Approval{MemberId: a.Member, ContentDigest: digest, Comment: comment, CreateTime: now})
	return nil
}

// MayApply refuses applying with a token the request's author minted for another
// member (who may otherwise apply is the caller's authorization).
func MayApply(cr *adminv1.ChangeRequest, a Approver) error {
	if a.impersonates(cr) {
		return errs.E(errs.PermissionDenied, "this API token was issued by the author of the change request for member %q: "+
			"it cannot apply the author's request", a.Member)
	}
	return nil
}

// Reject closes the request as rejected; the author withdraws instead.
func Reject(cr *adminv1.ChangeRequest, member, comment string, now *timestamppb.Timestamp) error {
	if err := open(cr); err != nil {
		return err
	}
	if member == cr.GetAuthorId() {
		return errs.E(errs.PermissionDenied, "the author of a change request withdraws it instead of rejecting it")
	}
	cr.State = adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_REJECTED
	if comment != "" {
		cr.Comments = append(cr.Comments, &adminv1.ChangeRequestComment{MemberId: member, Text: comment, CreateTime: now})
	}
	return nil
}

// Withdraw closes the request; only its author may.
func Withdraw(cr *adminv1.ChangeRequest, member string) error {
	if err := open(cr); err != nil {
		return err
	}
	if member != cr.GetAuthorId() {
		return errs.E(errs.PermissionDenied, "only the author may withdraw a change request")
	}
	cr.State = adminv1.ChangeRequestState_CHANGE_REQUEST_STATE_WITHDRAWN
	return nil
}

// Comment appends a comment (any state), on the whole request (path "") or on
// the diff line whose JSON Pointer is path (one of the request's current diff
// operations), stamped with the content digest it was made on.
func Comment(cr *adminv1.ChangeRequest, member, text, path string, now *timestamppb.Timestamp) error {
	if path != "" && !slices.ContainsFunc(cr.GetDiff(), func(d *adminv1.DiffOperation) bool { return d.GetPath() == path }) {
		return errs.Invalid("path", "%q is not a line of this change request's diff", path)
	}
	cr.Comments = append(cr.Comments, &adminv1.ChangeRequestComment{MemberId: member, Text: text, CreateTime: now,
		Path: path, ContentDigest: cr.GetContentDigest()})
	return nil
}

// Revise replaces the proposal (change nil: keep it), the base revision and the
// description (empty: keep), recomputes the digest and revokes every approval.
// Only the author revises; revision is the request revision the author read.
func Revise(cr *adminv1.ChangeRequest, member string, revision int64, change *adminv1.ProposedChange, base int64, description string, extra ...proto.Message) error {
	if err := open(cr); err != nil {
		return err
	}
	if member != cr.GetAuthorId() {
		return errs.E(errs.PermissionDenied, "only the author may edit a change request")
	}
	if revision != cr.GetRevision() {
		return errs.E(errs.Aborted, "change request %q: revision %d is stale (current %d)", cr.GetId(), revision, cr.GetRevision())
	}
	if change != nil {
		cr.Change = change
	}
	if base > 0 {
		cr.BaseRevision = base
	}
	if description != "" {
		cr.Description = description
	}
	cr.ContentDigest = Digest(cr.GetChange(), cr.GetBaseRevision(), extra...)
	cr.Approvals = nil
	return nil
}

// Ready allows applying once the request is open and has the required number of
// approvals bound to its current digest. Who may apply (the author or any editor)
// is the caller's authorization; approvals are what protect the content.
func Ready(cr *adminv1.ChangeRequest) error {
	if err := open(cr); err != nil {
		return err
	}
	need := max(cr.GetRequiredApprovals(), 1)
	if got := Valid(cr); got < need {
		return errs.E(errs.FailedPrecondition, "change request %q has %d of %d required approvals", cr.GetId(), got, need)
	}
	return nil
}

// Weakens reports whether moving an environment's governance settings from cur to
// next weakens them: approvals turned off, fewer approvals, or emergency off
// allowed while approvals are required. Only weakening an environment that
// requires approvals matters (an unprotected one has nothing to weaken).
func Weakens(cur, next *adminv1.EnvironmentSettings) bool {
	if !cur.GetApprovalsRequired() {
		return false
	}
	return !next.GetApprovalsRequired() ||
		max(next.GetRequiredApprovals(), 1) < max(cur.GetRequiredApprovals(), 1) ||
		(next.GetEmergencyOffAllowed() && !cur.GetEmergencyOffAllowed())
}

// SettingsChange is the proposal that moves an environment to settings s (every
// field set; unset ones take their defaults: approvals off, 1 approval, emergency
// off allowed).
func SettingsChange(s *adminv1.EnvironmentSettings) *adminv1.ProposedChange {
	em := true
	if s.EmergencyOffAllowed != nil {
		em = s.GetEmergencyOffAllowed()
	}
	return &adminv1.ProposedChange{Change: &adminv1.ProposedChange_EnvironmentSettings{EnvironmentSettings: &adminv1.EnvironmentSettingsChange{
		ApprovalsRequired: s.GetApprovalsRequired(), RequiredApprovals: max(s.GetRequiredApprovals(), 1), EmergencyOffAllowed: em}}}
}
