package store

import (
	"context"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Revision kinds: what a history belongs to.
const (
	KindFlagConfig = "flag_config"
	KindSegment    = "segment"
)

// History keeps every revision of flag configurations and segments (instant
// rollback). Contracts:
//   - Every write that changes a flag configuration or a segment (updates, kills,
//     change requests, schedules, bulk writes, reverts, rollbacks, and the
//     configurations a new flag or environment starts with) stores the state it
//     left as a revision IN THE SAME TRANSACTION, with the WriteMeta of the write
//     (who, why, the change request applied). A flag configuration's revision
//     number is its revision; a segment's counts on across deletion and
//     re-creation, its deletion being a revision without content.
//   - Revisions live as long as their environment; a deleted flag's revisions go
//     with it.
type History interface {
	// ListRevisions lists the revisions of one flag configuration or segment
	// (kind), newest first.
	ListRevisions(ctx context.Context, ref EnvRef, kind, key string, p Page) ([]*adminv1.Revision, string, error)
	// GetRevision returns one revision (0: the latest); errs.NotFound when absent.
	GetRevision(ctx context.Context, ref EnvRef, kind, key string, revision int64) (*adminv1.Revision, error)
	// DiffRevisions is the JSON diff (the change requests' model) from one
	// revision's content to another's (to 0: the latest).
	DiffRevisions(ctx context.Context, ref EnvRef, kind, key string, from, to int64) ([]*adminv1.DiffOperation, *adminv1.Revision, *adminv1.Revision, error)
	// PlanRollback computes what restoring the environment to target changes.
	// A manifest version that is not stored is errs.NotFound.
	PlanRollback(ctx context.Context, ref EnvRef, target RollbackTarget) (*RollbackPlan, error)
	// RollbackEnvironment applies a planned rollback in ONE transaction: every
	// item checked against its base revision (errs.Aborted when one changed
	// since), written with its own audit entry and revision, then check run once
	// on the result, segments deleted only when nothing references them, and one
	// "environment.rollback" audit entry for the whole.
	RollbackEnvironment(ctx context.Context, m WriteMeta, ref EnvRef, ch *adminv1.EnvironmentRollbackChange, check Check) error
}

// RollbackTarget is a published manifest version (non-zero) or a time.
type RollbackTarget struct {
	ManifestVersion uint64
	Time            time.Time
}

// RollbackPlan is what a rollback would do: the change to apply (or propose),
// and for people, the items it changes and those it leaves alone.
type RollbackPlan struct {
	Change  *adminv1.EnvironmentRollbackChange
	Changes []*adminv1.RollbackItem
	Skipped []*adminv1.RollbackItem
}
