// Package store is the control plane's storage contract: the source of truth for
// tenants, flags, segments, members, credentials, audit and the outbox.
//
// Two backends implement Store: store/postgres (pgx, production) and store/sqlite
// (pure Go, the embedded default). Both pass the same conformance suite
// (store/storetest). Domain values are the API's protobuf messages (adminv1,
// manifestv1); the backends own (de)serialisation.
//
// Contracts every backend keeps:
//   - Every write is ONE transaction that changes the state, appends an audit entry
//     (actor, action, resource, before/after JSON, request id, time, hash chain per
//     organization) and appends an outbox row naming what changed. A failed write
//     (conflict, validation, crash) leaves none of the three behind.
//   - Updates and deletes take the revision the caller read; a stale revision fails
//     with errs.Aborted and changes nothing. Every successful write bumps the
//     resource's revision by one (creates start at 1).
//   - Creates with a non-empty WriteMeta.IdempotencyKey are recorded: a retry with the
//     same key (same organization, same operation) returns the first result and writes
//     nothing; the same key with a different request is errs.AlreadyExists.
//   - Every read and write is scoped by organization key: nothing crosses tenants.
//   - Errors are from pkg/errs: NotFound, AlreadyExists (duplicate key), Aborted
//     (stale revision), FailedPrecondition (in use), InvalidArgument (from Check).
//   - Check callbacks run inside the write transaction against the environment as it
//     will be after the change, so validation (pkg/eval) sees a consistent state.
package store

import (
	"context"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// WriteMeta describes who writes and why; it becomes the audit entry.
type WriteMeta struct {
	ActorID   string
	ActorName string
	RequestID string
	// IdempotencyKey (creates only): see the package contract.
	IdempotencyKey string
	// Comment is recorded in the audit entry.
	Comment string
	// Action overrides the audit action name (e.g. "flag_config.emergency_off");
	// empty: the backend's default for the operation.
	Action string
	// ChangeRequestID is the change request the write applies (kept with the
	// revisions it writes, see History).
	ChangeRequestID string
}

// Page asks for one page of a list. Size <= 0 means 50; sizes are capped at 1000.
type Page struct {
	Size  int
	Token string
}

// ProjectRef names a project.
type ProjectRef struct{ Org, Project string }

// EnvRef names an environment.
type EnvRef struct{ Org, Project, Environment string }

// EnvView is the state of one environment with a proposed change in place. It
// satisfies pkg/eval's Lookup, so validation can follow prerequisites and segment
// references and find cycles.
type EnvView interface {
	// Flag returns a non-archived flag as the environment's manifest would carry it.
	Flag(key string) (*manifestv1.Flag, bool)
	Segment(key string) (*manifestv1.Segment, bool)
}

// Check validates a proposed change against the environment; a non-nil error aborts
// the write and is returned as is (use errs.InvalidArgument with the field).
type Check func(EnvView) error

// FlagFilter narrows ListFlags.
type FlagFilter struct {
	Tag             string
	IncludeArchived bool
}

// AuditFilter narrows ListAudit; zero fields do not filter.
type AuditFilter struct {
	ResourceType string
	// Resource is an exact path, or a prefix when it ends in "/".
	Resource string
	ActorID  string
	Action   string
	Start    time.Time
	End      time.Time
}

// AuditVerification is the result of checking an organization's hash chain.
type AuditVerification struct {
	OK      bool
	Checked int64
	// FirstBroken is the first entry whose hash or link does not verify.
	FirstBroken *adminv1.AuditEntry
	Problem     string
}

// Principal is what a credential resolves to.
type Principal struct {
	Org      string
	Member   *adminv1.Member
	Bindings []*adminv1.RoleBinding
	TokenID  string
	// Issuer is the member who minted the token ("" when not recorded).
	Issuer string
}

// OutboxEvent is one committed change waiting to be published.
type OutboxEvent struct {
	ID int64
	// Org, Project, Environment name the affected environment; Environment is empty
	// when every environment of the project is affected (e.g. a flag definition), and
	// Project too when the whole organization is.
	Org, Project, Environment string
	// Kind is the audit action, e.g. "flag_config.update".
	Kind     string
	Resource string
	Created  time.Time
}

// Orgs stores organizations.
type Orgs interface {
	CreateOrg(ctx context.Context, m WriteMeta, org *adminv1.Organization) (*adminv1.Organization, error)
	// CreateOrgWithOwner creates the organization and its first member with an
	// organization-wide owner role in one transaction.
	CreateOrgWithOwner(ctx context.Context, m WriteMeta, org *adminv1.Organization, owner *adminv1.Member) (*adminv1.Organization, error)
	GetOrg(ctx context.Context, org string) (*adminv1.Organization, error)
	// ListOrgs lists organizations; keys non-empty restricts it to those keys.
	ListOrgs(ctx context.Context, keys []string, p Page) ([]*adminv1.Organization, string, error)
	UpdateOrg(ctx context.Context, m WriteMeta, org *adminv1.Organization, revision int64) (*adminv1.Organization, error)
	DeleteOrg(ctx context.Context, m WriteMeta, org string, revision int64) error
}

// Projects stores projects and environments.
type Projects interface {
	// CreateProject creates the project with the environments development, staging
	// and production, in one transaction.
	CreateProject(ctx context.Context, m WriteMeta, org string, p *adminv1.Project) (*adminv1.Project, []*adminv1.Environment, error)
	GetProject(ctx context.Context, ref ProjectRef) (*adminv1.Project, error)
	ListProjects(ctx context.Context, org string, p Page) ([]*adminv1.Project, string, error)
	UpdateProject(ctx context.Context, m WriteMeta, org string, p *adminv1.Project, revision int64) (*adminv1.Project, error)
	DeleteProject(ctx context.Context, m WriteMeta, ref ProjectRef, revision int64) error

	// CreateEnvironment also creates every flag's configuration there (off).
	CreateEnvironment(ctx context.Context, m WriteMeta, ref ProjectRef, e *adminv1.Environment) (*adminv1.Environment, error)
	GetEnvironment(ctx context.Context, ref EnvRef) (*adminv1.Environment, error)
	ListEnvironments(ctx context.Context, ref ProjectRef, p Page) ([]*adminv1.Environment, string, error)
	UpdateEnvironment(ctx context.Context, m WriteMeta, ref ProjectRef, e *adminv1.Environment, revision int64) (*adminv1.Environment, error)
	DeleteEnvironment(ctx context.Context, m WriteMeta, ref EnvRef, revision int64) error
}

// Flags stores flag definitions and their per-environment configurations.
type Flags interface {
	// CreateFlag creates the definition and, in every environment of the project, the
	// configuration initial (validated by check per environment).
	CreateFlag(ctx context.Context, m WriteMeta, ref ProjectRef, f *adminv1.Flag, initial *manifestv1.FlagConfig, check Check) (*adminv1.Flag, error)
	GetFlag(ctx context.Context, ref ProjectRef, key string) (*adminv1.Flag, error)
	ListFlags(ctx context.Context, ref ProjectRef, f FlagFilter, p Page) ([]*adminv1.Flag, string, error)
	// UpdateFlag replaces the definition (key and type are immutable); check runs for
	// every environment.
	UpdateFlag(ctx context.Context, m WriteMeta, ref ProjectRef, f *adminv1.Flag, revision int64, check Check) (*adminv1.Flag, error)
	SetFlagArchived(ctx context.Context, m WriteMeta, ref ProjectRef, key string, archived bool, revision int64) (*adminv1.Flag, error)
	// DeleteFlag fails with errs.FailedPrecondition while another flag names it as a
	// prerequisite in any environment.
	DeleteFlag(ctx context.Context, m WriteMeta, ref ProjectRef, key string, revision int64) error

	GetFlagConfig(ctx context.Context, ref EnvRef, flag string) (*adminv1.FlagEnvironmentConfig, error)
	ListFlagConfigs(ctx context.Context, ref EnvRef, p Page) ([]*adminv1.FlagEnvironmentConfig, string, error)
	// ListProjectFlagConfigs lists the configurations of every flag of a project
	// in the environments named (every environment when envs is empty), ordered by
	// environment then flag, in ONE query: the flags list's per-environment
	// states and lifecycle filter read them on each request.
	ListProjectFlagConfigs(ctx context.Context, ref ProjectRef, envs []string) ([]*adminv1.FlagEnvironmentConfig, error)
	UpdateFlagConfig(ctx context.Context, m WriteMeta, ref EnvRef, flag string, c *manifestv1.FlagConfig, revision int64, check Check) (*adminv1.FlagEnvironmentConfig, error)
}

// Segments stores segments (per environment).
type Segments interface {
	CreateSegment(ctx context.Context, m WriteMeta, ref EnvRef, s *manifestv1.Segment, check Check) (*manifestv1.Segment, error)
	GetSegment(ctx context.Context, ref EnvRef, key string) (*manifestv1.Segment, error)
	ListSegments(ctx context.Context, ref EnvRef, p Page) ([]*manifestv1.Segment, string, error)
	UpdateSegment(ctx context.Context, m WriteMeta, ref EnvRef, s *manifestv1.Segment, revision int64, check Check) (*manifestv1.Segment, error)
	// DeleteSegment fails with errs.FailedPrecondition while a flag or segment of the
	// environment references it.
	DeleteSegment(ctx context.Context, m WriteMeta, ref EnvRef, key string, revision int64) error
}

// Members stores members and role bindings.
type Members interface {
	// CreateMember creates the member (ID assigned, UUIDv7) and, when role is set, an
	// organization-wide binding.
	CreateMember(ctx context.Context, m WriteMeta, org string, mem *adminv1.Member, role adminv1.Role) (*adminv1.Member, error)
	GetMember(ctx context.Context, org, id string) (*adminv1.Member, []*adminv1.RoleBinding, error)
	ListMembers(ctx context.Context, org string, p Page) ([]*adminv1.Member, string, error)
	UpdateMember(ctx context.Context, m WriteMeta, org string, mem *adminv1.Member, revision int64) (*adminv1.Member, error)
	DeleteMember(ctx context.Context, m WriteMeta, org, id string) error
	// MemberByOIDCSubject finds the member mapped to "issuer|subject", or by email.
	MemberByOIDCSubject(ctx context.Context, org, subject, email string) (*adminv1.Member, []*adminv1.RoleBinding, error)

	// GrantRole creates or replaces the member's binding at that scope.
	GrantRole(ctx context.Context, m WriteMeta, org string, b *adminv1.RoleBinding) (*adminv1.RoleBinding, error)
	RevokeRole(ctx context.Context, m WriteMeta, org, memberID string, scope *adminv1.Scope) error
	ListRoleBindings(ctx context.Context, org, memberID string, p Page) ([]*adminv1.RoleBinding, string, error)
}

// Credentials stores API tokens and SDK keys. Secrets never reach the store: only
// their SHA-256 hashes.
type Credentials interface {
	CreateAPIToken(ctx context.Context, m WriteMeta, org string, t *adminv1.ApiToken, hash []byte) (*adminv1.ApiToken, error)
	ListAPITokens(ctx context.Context, org string, p Page) ([]*adminv1.ApiToken, string, error)
	RevokeAPIToken(ctx context.Context, m WriteMeta, org, id string) (*adminv1.ApiToken, error)
	// Authenticate resolves a token hash to its principal; revoked or expired tokens
	// (at now) are errs.Unauthenticated. It records last use (best effort).
	Authenticate(ctx context.Context, hash []byte, now time.Time) (*Principal, error)

	CreateSDKKey(ctx context.Context, m WriteMeta, ref EnvRef, k *adminv1.SdkKey, hash []byte) (*adminv1.SdkKey, error)
	ListSDKKeys(ctx context.Context, ref EnvRef, p Page) ([]*adminv1.SdkKey, string, error)
	// RotateSDKKey sets the old key's expiry to oldExpires and creates newKey, in one
	// transaction.
	RotateSDKKey(ctx context.Context, m WriteMeta, ref EnvRef, id string, oldExpires time.Time, newKey *adminv1.SdkKey, hash []byte) (old, created *adminv1.SdkKey, err error)
	RevokeSDKKey(ctx context.Context, m WriteMeta, ref EnvRef, id string) (*adminv1.SdkKey, error)
}

// Audit reads the audit log (entries are written by the other interfaces' writes).
type Audit interface {
	// ListAudit lists entries newest first.
	ListAudit(ctx context.Context, org string, f AuditFilter, p Page) ([]*adminv1.AuditEntry, string, error)
	GetAudit(ctx context.Context, org, id string) (*adminv1.AuditEntry, error)
	// VerifyAudit recomputes the organization's hash chain from its first entry.
	VerifyAudit(ctx context.Context, org string) (*AuditVerification, error)
}

// Manifests gives the publisher (and the sync API) what it needs.
type Manifests interface {
	// EnvironmentManifest assembles the current content of an environment as a
	// manifest (flags that are not archived with their configuration, segments, SDK
	// keys that are neither revoked nor expired at now); identity fields are set,
	// version/signature fields are the publisher's.
	EnvironmentManifest(ctx context.Context, ref EnvRef, now time.Time) (*manifestv1.Manifest, error)
	// PendingOutbox returns up to limit unpublished events, oldest first.
	PendingOutbox(ctx context.Context, limit int) ([]OutboxEvent, error)
	// EnvironmentEntries reads, in one snapshot, only the named flags and segments
	// of an environment as its manifest carries them (EnvironmentManifest's
	// content, restricted), plus its SDK keys valid at now and its private
	// attributes (both small). A named flag that is archived, deleted or has no
	// configuration there, and a named segment that does not exist, are absent
	// from the result: the publisher deletes them from the manifest.
	// errs.NotFound: the environment does not exist.
	EnvironmentEntries(ctx context.Context, ref EnvRef, flags, segments []string, now time.Time) (*EnvEntries, error)
}

// EnvEntries is what EnvironmentEntries read.
type EnvEntries struct {
	// Flags and Segments are the named ones that exist, ordered by key.
	Flags             []*manifestv1.Flag
	Segments          []*manifestv1.Segment
	SdkKeys           []*manifestv1.SdkKey
	PrivateAttributes []string
}

// StoredManifest is one signed manifest version as the publisher stored it.
type StoredManifest struct {
	Ref     EnvRef
	Version uint64
	// Signed is the envelope evaluators verify; its payload is a manifestv1.Manifest.
	Signed *manifestv1.SignedManifest
	// Digest is the SHA-256 of Signed.Payload (the next version's previous digest).
	Digest []byte
	// Epoch is the fencing epoch of the publisher that stored it.
	Epoch     uint64
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// ManifestHead is the latest stored version of an environment.
type ManifestHead struct {
	Ref       EnvRef
	Version   uint64
	ExpiresAt time.Time
}

// Publishing stores the publisher's output: signed manifest versions (the latest
// and a bounded history per environment) and the fencing epoch of the publisher.
//
// Contracts:
//   - Versions are gapless per environment: CommitManifests stores version v only
//     when the latest stored version is v-1 (none for v = 1), else errs.Aborted.
//   - Fencing: CommitManifests succeeds only when epoch is the current epoch
//     (NextPublisherEpoch's latest result), else errs.FailedPrecondition; a new
//     epoch cannot be taken while a commit with the old one is in progress.
//   - CommitManifests stores every version, marks the outbox rows published and
//     prunes history in ONE transaction: all of it or nothing.
type Publishing interface {
	// NextPublisherEpoch increments the fencing epoch and returns the new value; a
	// publisher calls it once when it becomes the leader.
	NextPublisherEpoch(ctx context.Context) (uint64, error)
	// PublishTargets lists the environments in scope (project "": every project of
	// org; org "": every organization): the existing ones and those that only have
	// stored manifests (deleted since).
	PublishTargets(ctx context.Context, org, project string) ([]EnvRef, error)
	// LatestManifest returns the latest stored version (errs.NotFound: none).
	LatestManifest(ctx context.Context, ref EnvRef) (*StoredManifest, error)
	// GetManifest returns one stored version (errs.NotFound: never stored or pruned).
	GetManifest(ctx context.Context, ref EnvRef, version uint64) (*StoredManifest, error)
	// ManifestRange returns the stored versions from..to (inclusive), oldest first;
	// pruned versions are absent.
	ManifestRange(ctx context.Context, ref EnvRef, from, to uint64) ([]*StoredManifest, error)
	// ManifestHeads lists the latest version of every environment that has one.
	ManifestHeads(ctx context.Context) ([]ManifestHead, error)
	// CommitManifests stores ms (each the next version of its environment, several
	// per environment allowed in order), marks the outbox rows published and keeps
	// the last keep versions per environment (keep <= 0: all).
	CommitManifests(ctx context.Context, epoch uint64, ms []*StoredManifest, published []int64, keep int) error
	// PruneOutbox deletes at most limit outbox rows marked published before
	// before, oldest first, and returns how many; unpublished rows are never
	// deleted.
	PruneOutbox(ctx context.Context, before time.Time, limit int) (int64, error)
}

// Usage stores evaluation counts reported by evaluators.
type Usage interface {
	// RecordUsage adds counts; a batch id seen before is ignored.
	RecordUsage(ctx context.Context, ref EnvRef, batchID string, counts []UsageCount) error
	FlagUsage(ctx context.Context, ref EnvRef, flag string, start, end time.Time) ([]*adminv1.UsageBucket, error)
	// ProjectUsage sums every flag's counts (all variants) in [start, end) into
	// buckets of width bucket from start, by flag key; flags never evaluated in
	// the window are left out.
	ProjectUsage(ctx context.Context, ref EnvRef, start, end time.Time, bucket time.Duration) ([]*adminv1.FlagUsageSeries, error)
	// VariantUsage sums a flag's evaluations and errors per variant over the
	// minutes starting at or after since (the minute in progress included).
	VariantUsage(ctx context.Context, ref EnvRef, flag string, since time.Time) ([]VariantTotal, error)
}

// VariantTotal is a variant's evaluations and errors over a window ("" is the
// evaluations that failed).
type VariantTotal struct {
	Variant             string
	Evaluations, Errors int64
}

// SeenContexts stores the evaluation contexts evaluators and SDKs sampled, and
// each project's private attributes (docs/release-safety.md, "Seen contexts").
type SeenContexts interface {
	// RecordSeenContexts upserts contexts by digest (last seen moves forward only),
	// then deletes the environment's contexts last seen before since and, beyond
	// keep (> 0), the least recently seen.
	RecordSeenContexts(ctx context.Context, ref EnvRef, cs []SeenContext, keep int, since time.Time) error
	// ListSeenContexts lists contexts last seen at or after since, most recent
	// first, with the next page token and the total.
	ListSeenContexts(ctx context.Context, ref EnvRef, since time.Time, p Page) ([]*adminv1.SeenContext, string, int64, error)
	// PruneSeenContexts deletes contexts last seen before before, in every environment.
	PruneSeenContexts(ctx context.Context, before time.Time) (int64, error)
	ContextPolicy(ctx context.Context, ref ProjectRef) (*adminv1.ContextPolicy, error)
	// SetContextPolicy replaces the private attributes (audited; republishes
	// every environment of the project, whose manifests carry the list).
	SetContextPolicy(ctx context.Context, m WriteMeta, ref ProjectRef, p *adminv1.ContextPolicy) (*adminv1.ContextPolicy, error)
}

// SeenContext is one sampled context: its canonical JSON, the SHA-256 (hex) of
// that JSON, and when it was seen.
type SeenContext struct {
	Digest     string
	Attributes []byte
	Seen       time.Time
}

// UsageCount is how often a flag served a variant in one minute, and how many
// errors were reported against it (see EvaluationCount.errors).
type UsageCount struct {
	Flag, Variant string
	Minute        time.Time
	Count         int64
	Errors        int64
}

// Store is the whole storage surface. Consumers should depend on the small
// interfaces above, not on Store.
type Store interface {
	Orgs
	Projects
	Flags
	Segments
	Members
	Credentials
	Audit
	Manifests
	Publishing
	Usage
	SeenContexts
	// Ping checks the database is reachable (readiness).
	Ping(ctx context.Context) error
	Close() error
}

// Bulk is one bulk write of a project (BulkWrite): flag definitions (upserted by
// key), segments and flag configurations of its environments (replaced).
type Bulk struct {
	Flags    []*adminv1.Flag
	Segments []BulkSegment
	Configs  []BulkConfig
	// Initial is the configuration a created flag starts with in every
	// environment (nil: an empty one), before Configs apply.
	Initial func(f *adminv1.Flag) *manifestv1.FlagConfig
}

// BulkSegment is a segment of one environment.
type BulkSegment struct {
	Environment string
	Segment     *manifestv1.Segment
}

// BulkConfig is a flag's configuration in one environment.
type BulkConfig struct {
	Environment, Flag string
	Config            *manifestv1.FlagConfig
	// BaseRevision, when not 0, must be the stored configuration's revision.
	BaseRevision int64
}

// BulkResult counts what a bulk write did.
type BulkResult struct {
	FlagsCreated, FlagsUpdated, FlagsUnchanged          int
	SegmentsCreated, SegmentsUpdated, SegmentsUnchanged int
	ConfigsUpdated, ConfigsUnchanged                    int
}

// RecoveryAction is the audit action of a recovery from a manifest snapshot.
const RecoveryAction = "environment.recover"

// Recovery is what RecoverEnvironment did to one environment (or, in a dry run,
// would do). The key lists are sorted; SDK keys are named by id.
type Recovery struct {
	Ref EnvRef `json:"-"`
	// VersionBefore is the latest manifest version the database held (0: none).
	VersionBefore uint64 `json:"versionBefore"`
	// SnapshotVersion is the version restored; after the recovery it is the
	// database's latest version, and the publisher's next one follows it.
	SnapshotVersion uint64 `json:"snapshotVersion"`
	SnapshotKeyID   string `json:"snapshotKeyId"`
	// UpToDate: the database already held SnapshotVersion or later; nothing done.
	UpToDate bool `json:"upToDate,omitempty"`

	FlagsCreated  []string `json:"flagsCreated,omitempty"`
	FlagsUpdated  []string `json:"flagsUpdated,omitempty"`
	FlagsArchived []string `json:"flagsArchived,omitempty"`
	// ConfigsUpdated names the flags whose configuration in this environment
	// changed (configurations of created flags included).
	ConfigsUpdated  []string `json:"configsUpdated,omitempty"`
	SegmentsCreated []string `json:"segmentsCreated,omitempty"`
	SegmentsUpdated []string `json:"segmentsUpdated,omitempty"`
	SegmentsDeleted []string `json:"segmentsDeleted,omitempty"`
	SDKKeysCreated  []string `json:"sdkKeysCreated,omitempty"`
	SDKKeysUpdated  []string `json:"sdkKeysUpdated,omitempty"`
	SDKKeysRevoked  []string `json:"sdkKeysRevoked,omitempty"`
}

// Changed reports whether the recovery changes any content (a recovery that
// changes none still moves the version forward).
func (r *Recovery) Changed() bool {
	for _, l := range [][]string{r.FlagsCreated, r.FlagsUpdated, r.FlagsArchived, r.ConfigsUpdated, r.SegmentsCreated,
		r.SegmentsUpdated, r.SegmentsDeleted, r.SDKKeysCreated, r.SDKKeysUpdated, r.SDKKeysRevoked} {
		if len(l) > 0 {
			return true
		}
	}
	return false
}

// Recoverer rebuilds an environment from a verified manifest snapshot (the
// operator's recover-from-snapshots; see internal/recovery). Both SQL backends
// implement it.
//
// Contract: in ONE transaction it makes the environment's flags (definitions as
// manifests carry them), configurations, segments and SDK keys equal to content
// (the payload of snap, verified by the caller), appends one audit entry (action
// RecoveryAction) and one outbox row for the environment, stores snap as the
// environment's latest manifest version (so the next published version follows
// it and no evaluator that holds it ever sees a version go back) and takes a new
// publisher epoch above snap's (fencing any publisher that started from the
// restored database). A database that already holds snap's version or a later
// one is left untouched (Recovery.UpToDate). With dryRun it reports the same
// and rolls everything back. An unknown environment is errs.NotFound.
type Recoverer interface {
	RecoverEnvironment(ctx context.Context, m WriteMeta, snap *StoredManifest, content *manifestv1.Manifest, dryRun bool) (*Recovery, error)
}
