// Package governance holds the four-eyes rules of change requests: the digest
// that binds an approval to the exact proposed content, who may approve, when a
// request may be applied, and what editing a request does to its approvals. It
// decides; the store persists (inside its transaction, via callbacks) and the
// server authenticates.
package governance

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

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

// Approve adds member's approval of digest. The author can never approve their
// own request, whatever their role; the digest must be the current one (the
// content the approver saw); a member approves once.
func Approve(cr *adminv1.ChangeRequest, member, digest, comment string, now *timestamppb.Timestamp) error {
	if err := open(cr); err != nil {
		return err
	}
	if member == "" || member == cr.GetAuthorId() {
		return errs.E(errs.PermissionDenied, "the author of a change request cannot approve it")
	}
	if digest != cr.GetContentDigest() {
		return errs.E(errs.FailedPrecondition, "content_digest %q is not the request's current digest %q: the proposal changed, review it again", digest, cr.GetContentDigest())
	}
	for _, a := range cr.GetApprovals() {
		if a.GetMemberId() == member && a.GetContentDigest() == digest {
			return errs.E(errs.AlreadyExists, "member %q already approved this content", member)
		}
	}
	cr.Approvals = append(cr.Approvals, &adminv1.Approval{MemberId: member, ContentDigest: digest, Comment: comment, CreateTime: now})
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

// Comment appends a comment (any state).
func Comment(cr *adminv1.ChangeRequest, member, text string, now *timestamppb.Timestamp) {
	cr.Comments = append(cr.Comments, &adminv1.ChangeRequestComment{MemberId: member, Text: text, CreateTime: now})
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
