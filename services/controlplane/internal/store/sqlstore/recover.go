package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// RecoveredKeyName names an SDK key that recovery recreated from a snapshot
// (snapshots carry the key's id, hash, kind and expiry, not its name or prefix).
const RecoveredKeyName = "recovered from a manifest snapshot"

var _ store.Recoverer = (*Store)(nil)

// errRollback ends a dry run's transaction without committing it.
var errRollback = errors.New("sqlstore: dry run rolled back")

// RecoverEnvironment implements store.Recoverer (see its contract).
func (s *Store) RecoverEnvironment(ctx context.Context, m store.WriteMeta, snap *store.StoredManifest, content *manifestv1.Manifest, dryRun bool) (*store.Recovery, error) {
	if snap == nil || snap.Version == 0 || content == nil {
		return nil, errs.Invalid("snapshot", "a recovery needs a snapshot version and its content")
	}
	ref := snap.Ref
	if content.GetOrg() != ref.Org || content.GetProject() != ref.Project || content.GetEnvironment() != ref.Environment ||
		content.GetVersion() != snap.Version {
		return nil, errs.Invalid("snapshot", "content is version %d of %s/%s/%s, not version %d of %s/%s/%s",
			content.GetVersion(), content.GetOrg(), content.GetProject(), content.GetEnvironment(),
			snap.Version, ref.Org, ref.Project, ref.Environment)
	}
	var res *store.Recovery
	rolledBack := false
	err := s.inTx(ctx, func(t *Tx) error {
		var err error
		res, err = t.recoverEnv(ctx, m, snap, content)
		if err == nil && dryRun {
			rolledBack = true
			return errRollback
		}
		return err
	})
	if rolledBack {
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// recoverEnv is RecoverEnvironment's work inside t.
func (t *Tx) recoverEnv(ctx context.Context, m store.WriteMeta, snap *store.StoredManifest, content *manifestv1.Manifest) (*store.Recovery, error) {
	s, x, ref := t.s, t.q(), snap.Ref
	if _, err := s.loadEnv(ctx, x, ref, true); err != nil {
		return nil, err
	}
	var head int64
	err := x.row(ctx, `SELECT version FROM manifest_heads WHERE org = ? AND project = ? AND environment = ?`+s.d.ForUpdate,
		ref.Org, ref.Project, ref.Environment).Scan(&head)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	res := &store.Recovery{Ref: ref, VersionBefore: uint64(head), SnapshotVersion: snap.Version, SnapshotKeyID: snap.Signed.GetKeyId()}
	if uint64(head) >= snap.Version {
		res.UpToDate = true
		return res, nil
	}
	if err := t.recoverFlags(ctx, ref, content, res); err != nil {
		return nil, err
	}
	if err := t.recoverSegments(ctx, ref, content, res); err != nil {
		return nil, err
	}
	if err := t.recoverSDKKeys(ctx, ref, content, res); err != nil {
		return nil, err
	}
	if err := t.adoptManifest(ctx, snap, head); err != nil {
		return nil, err
	}
	// Fence: a publisher that started on the restored database holds an older
	// epoch and can no longer store anything; the next leader starts above both.
	var epoch int64
	if err := x.row(ctx, `SELECT epoch FROM publisher_epoch WHERE id = 1`+s.d.ForUpdate).Scan(&epoch); err != nil {
		return nil, err
	}
	if _, err := x.exec(ctx, `UPDATE publisher_epoch SET epoch = ? WHERE id = 1`, max(epoch, int64(snap.Epoch))+1); err != nil {
		return nil, err
	}
	after, err := json.Marshal(res)
	if err != nil {
		return nil, err
	}
	before, err := json.Marshal(map[string]uint64{"manifestVersion": uint64(head)})
	if err != nil {
		return nil, err
	}
	comment := fmt.Sprintf("recovered from manifest snapshot version %d (key %s)", snap.Version, snap.Signed.GetKeyId())
	if m.Comment != "" {
		comment += "; " + m.Comment
	}
	m.Comment = comment
	return res, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
		action: store.RecoveryAction, resourceType: "environment", resource: envPath(ref.Project, ref.Environment),
		before: json.RawMessage(before), after: json.RawMessage(after)})
}

// recoverFlags makes the project's flag definitions and this environment's
// configurations equal to the snapshot's; a flag the snapshot lacks is archived
// (the snapshot cannot tell archived from deleted; archiving keeps its history).
func (t *Tx) recoverFlags(ctx context.Context, ref store.EnvRef, content *manifestv1.Manifest, res *store.Recovery) error {
	s, x := t.s, t.q()
	pref := store.ProjectRef{Org: ref.Org, Project: ref.Project}
	rows, err := x.query(ctx, `SELECT `+flagColumns+` FROM flags WHERE org = ? AND project = ? ORDER BY key`+s.d.ForUpdate,
		ref.Org, ref.Project)
	if err != nil {
		return err
	}
	list, err := collect(rows, scanFlag)
	if err != nil {
		return err
	}
	flags := map[string]*adminv1.Flag{}
	for _, f := range list {
		flags[f.Key] = f
	}
	type cfg struct {
		config *manifestv1.FlagConfig
		rev    int64
	}
	rows, err = x.query(ctx, `SELECT flag, config, revision FROM flag_configs WHERE org = ? AND project = ? AND environment = ?`,
		ref.Org, ref.Project, ref.Environment)
	if err != nil {
		return err
	}
	configs := map[string]cfg{}
	for rows.Next() {
		var key string
		var raw []byte
		var c cfg
		if err := rows.Scan(&key, &raw, &c.rev); err != nil {
			_ = rows.Close()
			return err
		}
		c.config = &manifestv1.FlagConfig{}
		if err := proto.Unmarshal(raw, c.config); err != nil {
			_ = rows.Close()
			return err
		}
		configs[key] = c
	}
	if err := rows.Close(); err != nil {
		return err
	}
	envs, err := envKeys(ctx, x, pref)
	if err != nil {
		return err
	}
	now := micros(t.now)
	inSnapshot := map[string]bool{}
	for _, f := range content.GetFlags() {
		inSnapshot[f.GetKey()] = true
		config := f.GetConfig()
		if config == nil {
			config = &manifestv1.FlagConfig{}
		}
		cfgBytes, err := deterministic.Marshal(config)
		if err != nil {
			return err
		}
		before, ok := flags[f.GetKey()]
		if !ok {
			id, err := newID()
			if err != nil {
				return err
			}
			out := &adminv1.Flag{Key: f.GetKey(), Type: f.GetType(), Variants: f.GetVariants(), ClientVisible: f.GetClientVisible()}
			body, err := flagBody(out)
			if err != nil {
				return err
			}
			if _, err := x.exec(ctx, `INSERT INTO flags (org, project, key, id, body, tags, archived, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`, ref.Org, ref.Project, out.Key, id, body, "", false, now, now); err != nil {
				return err
			}
			empty, err := deterministic.Marshal(&manifestv1.FlagConfig{})
			if err != nil {
				return err
			}
			// Elsewhere the flag starts off at revision 0 (no client has read it):
			// that environment's own snapshot, recovered next, sets its revision.
			for _, env := range envs {
				c, rev := empty, int64(0)
				if env == ref.Environment {
					c, rev = cfgBytes, max(f.GetRevision(), 1)
				}
				if _, err := x.exec(ctx, `INSERT INTO flag_configs (org, project, environment, flag, config, revision, updated_at)
					VALUES (?, ?, ?, ?, ?, ?, ?)`, ref.Org, ref.Project, env, out.Key, c, rev, now); err != nil {
					return err
				}
			}
			res.FlagsCreated = append(res.FlagsCreated, f.GetKey())
			res.ConfigsUpdated = append(res.ConfigsUpdated, f.GetKey())
			continue
		}
		after := proto.CloneOf(before)
		after.Type, after.Variants, after.ClientVisible, after.Archived = f.GetType(), f.GetVariants(), f.GetClientVisible(), false
		if !proto.Equal(after, before) {
			after.Revision, after.UpdateTime = before.Revision+1, timestamppb.New(t.now)
			body, err := flagBody(after)
			if err != nil {
				return err
			}
			if _, err := x.exec(ctx, `UPDATE flags SET body = ?, archived = ?, revision = ?, updated_at = ?
				WHERE org = ? AND project = ? AND key = ?`, body, false, after.Revision, now, ref.Org, ref.Project, after.Key); err != nil {
				return err
			}
			res.FlagsUpdated = append(res.FlagsUpdated, f.GetKey())
		}
		cur, ok := configs[f.GetKey()]
		switch {
		case !ok:
			if _, err := x.exec(ctx, `INSERT INTO flag_configs (org, project, environment, flag, config, revision, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, ref.Org, ref.Project, ref.Environment, f.GetKey(), cfgBytes, max(f.GetRevision(), 1), now); err != nil {
				return err
			}
		case proto.Equal(cur.config, config):
			continue
		default:
			// The snapshot's revision, so a client that read it before the
			// disaster can write again; never one a client saw for other content.
			if _, err := x.exec(ctx, `UPDATE flag_configs SET config = ?, revision = ?, updated_at = ?
				WHERE org = ? AND project = ? AND environment = ? AND flag = ?`, cfgBytes, max(f.GetRevision(), cur.rev+1), now,
				ref.Org, ref.Project, ref.Environment, f.GetKey()); err != nil {
				return err
			}
		}
		res.ConfigsUpdated = append(res.ConfigsUpdated, f.GetKey())
	}
	for _, f := range list {
		if f.Archived || inSnapshot[f.Key] {
			continue
		}
		if _, err := x.exec(ctx, `UPDATE flags SET archived = ?, revision = ?, updated_at = ? WHERE org = ? AND project = ? AND key = ?`,
			true, f.Revision+1, now, ref.Org, ref.Project, f.Key); err != nil {
			return err
		}
		res.FlagsArchived = append(res.FlagsArchived, f.Key)
	}
	sort.Strings(res.FlagsCreated)
	sort.Strings(res.FlagsUpdated)
	sort.Strings(res.ConfigsUpdated)
	return nil
}

// recoverSegments makes the environment's segments equal to the snapshot's.
func (t *Tx) recoverSegments(ctx context.Context, ref store.EnvRef, content *manifestv1.Manifest, res *store.Recovery) error {
	x := t.q()
	rows, err := x.query(ctx, `SELECT key, body, revision FROM segments WHERE org = ? AND project = ? AND environment = ?
		ORDER BY key`, ref.Org, ref.Project, ref.Environment)
	if err != nil {
		return err
	}
	list, err := collect(rows, scanSegment)
	if err != nil {
		return err
	}
	have := map[string]*manifestv1.Segment{}
	for _, sg := range list {
		have[sg.Key] = sg
	}
	now := micros(t.now)
	inSnapshot := map[string]bool{}
	for _, sg := range content.GetSegments() {
		inSnapshot[sg.GetKey()] = true
		body, err := segmentBody(sg)
		if err != nil {
			return err
		}
		before, ok := have[sg.GetKey()]
		if !ok {
			id, err := newID()
			if err != nil {
				return err
			}
			if _, err := x.exec(ctx, `INSERT INTO segments (org, project, environment, key, id, body, revision, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, ref.Org, ref.Project, ref.Environment, sg.GetKey(), id, body,
				max(sg.GetRevision(), 1), now, now); err != nil {
				return err
			}
			res.SegmentsCreated = append(res.SegmentsCreated, sg.GetKey())
			continue
		}
		want := proto.CloneOf(sg)
		want.Revision = before.Revision
		if proto.Equal(want, before) {
			continue
		}
		if _, err := x.exec(ctx, `UPDATE segments SET body = ?, revision = ?, updated_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND key = ?`, body, max(sg.GetRevision(), before.Revision+1), now,
			ref.Org, ref.Project, ref.Environment, sg.GetKey()); err != nil {
			return err
		}
		res.SegmentsUpdated = append(res.SegmentsUpdated, sg.GetKey())
	}
	for _, sg := range list {
		if inSnapshot[sg.Key] {
			continue
		}
		if _, err := x.exec(ctx, `DELETE FROM segments WHERE org = ? AND project = ? AND environment = ? AND key = ?`,
			ref.Org, ref.Project, ref.Environment, sg.Key); err != nil {
			return err
		}
		res.SegmentsDeleted = append(res.SegmentsDeleted, sg.Key)
	}
	sort.Strings(res.SegmentsCreated)
	sort.Strings(res.SegmentsUpdated)
	return nil
}

// recoverSDKKeys makes the keys that evaluators accept in the environment equal
// to the snapshot's: keys it carries are created (by id, with their hash, kind
// and expiry) or given its expiry; keys the database would still serve but the
// snapshot does not carry were revoked after the backup and are revoked again.
// A key the database holds as revoked stays revoked.
func (t *Tx) recoverSDKKeys(ctx context.Context, ref store.EnvRef, content *manifestv1.Manifest, res *store.Recovery) error {
	x := t.q()
	type key struct {
		expire, revoked int64
	}
	rows, err := x.query(ctx, `SELECT id, expire_at, revoked_at FROM sdk_keys WHERE org = ? AND project = ? AND environment = ?
		ORDER BY id`, ref.Org, ref.Project, ref.Environment)
	if err != nil {
		return err
	}
	have := map[string]key{}
	var ids []string
	for rows.Next() {
		var id string
		var k key
		if err := rows.Scan(&id, &k.expire, &k.revoked); err != nil {
			_ = rows.Close()
			return err
		}
		have[id] = k
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return err
	}
	now := micros(t.now)
	issued := tsMicros(content.GetIssuedAt())
	inSnapshot := map[string]bool{}
	for _, k := range content.GetSdkKeys() {
		inSnapshot[k.GetId()] = true
		expire := tsMicros(k.GetExpiresAt())
		cur, ok := have[k.GetId()]
		switch {
		case !ok:
			if _, err := x.exec(ctx, `INSERT INTO sdk_keys (id, org, project, environment, name, kind, prefix, hash, expire_at, revoked_at, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`, k.GetId(), ref.Org, ref.Project, ref.Environment, RecoveredKeyName,
				int32(k.GetKind()), "", k.GetHash(), expire, now); err != nil {
				return err
			}
			res.SDKKeysCreated = append(res.SDKKeysCreated, k.GetId())
		case cur.revoked == 0 && cur.expire != expire:
			if _, err := x.exec(ctx, `UPDATE sdk_keys SET expire_at = ? WHERE id = ?`, expire, k.GetId()); err != nil {
				return err
			}
			res.SDKKeysUpdated = append(res.SDKKeysUpdated, k.GetId())
		}
	}
	for _, id := range ids {
		k := have[id]
		if inSnapshot[id] || k.revoked != 0 || (k.expire != 0 && k.expire <= issued) {
			continue
		}
		if _, err := x.exec(ctx, `UPDATE sdk_keys SET revoked_at = ? WHERE id = ?`, now, id); err != nil {
			return err
		}
		res.SDKKeysRevoked = append(res.SDKKeysRevoked, id)
	}
	sort.Strings(res.SDKKeysCreated)
	return nil
}

// adoptManifest stores snap as the environment's latest version (above head, the
// restored database's latest), so the publisher's next version follows it.
func (t *Tx) adoptManifest(ctx context.Context, snap *store.StoredManifest, head int64) error {
	x, r, v := t.q(), snap.Ref, int64(snap.Version)
	if head == 0 {
		if _, err := x.exec(ctx, `INSERT INTO manifest_heads (org, project, environment, version, expires_at)
			VALUES (?, ?, ?, ?, ?)`, r.Org, r.Project, r.Environment, v, micros(snap.ExpiresAt)); err != nil {
			return err
		}
	} else if _, err := x.exec(ctx, `UPDATE manifest_heads SET version = ?, expires_at = ?
		WHERE org = ? AND project = ? AND environment = ?`, v, micros(snap.ExpiresAt), r.Org, r.Project, r.Environment); err != nil {
		return err
	}
	if _, err := x.exec(ctx, `DELETE FROM manifests WHERE org = ? AND project = ? AND environment = ? AND version >= ?`,
		r.Org, r.Project, r.Environment, v); err != nil {
		return err
	}
	if _, err := x.exec(ctx, `INSERT INTO manifests (`+manifestColumns+`, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Org, r.Project, r.Environment, v, snap.Signed.GetPayload(),
		snap.Signed.GetKeyId(), snap.Signed.GetSignature(), snap.Digest, int64(snap.Epoch), micros(snap.IssuedAt),
		micros(snap.ExpiresAt), micros(t.now)); err != nil {
		return err
	}
	_, err := x.exec(ctx, `UPDATE environments SET manifest_version = ? WHERE org = ? AND project = ? AND key = ?`,
		v, r.Org, r.Project, r.Environment)
	return err
}
