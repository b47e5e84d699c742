package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// OnOutboxCommit registers fn to run after the commit of every transaction that
// appended an outbox row (nil: none). The in-process publisher uses it as its
// wake-up on SQLite; fn must not block.
func (s *Store) OnOutboxCommit(fn func()) {
	if fn == nil {
		s.outboxHook.Store(nil)
		return
	}
	s.outboxHook.Store(&fn)
}

// NextPublisherEpoch increments the fencing epoch. On PostgreSQL the UPDATE waits
// for any CommitManifests in progress (it holds the row), so once this returns no
// publisher with an older epoch can store anything.
func (s *Store) NextPublisherEpoch(ctx context.Context) (uint64, error) {
	var epoch int64
	err := s.inTx(ctx, func(t *Tx) error {
		return t.q().row(ctx, `UPDATE publisher_epoch SET epoch = epoch + 1 WHERE id = 1 RETURNING epoch`).Scan(&epoch)
	})
	if err != nil {
		return 0, err
	}
	return uint64(epoch), nil
}

// PublishTargets lists the environments in scope, existing or with stored manifests.
func (s *Store) PublishTargets(ctx context.Context, org, project string) ([]store.EnvRef, error) {
	rows, err := s.r().query(ctx, `SELECT org, project, key FROM environments
			WHERE (? = '' OR org = ?) AND (? = '' OR project = ?)
		UNION SELECT org, project, environment FROM manifest_heads
			WHERE (? = '' OR org = ?) AND (? = '' OR project = ?)
		ORDER BY 1, 2, 3`, org, org, project, project, org, org, project, project)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.EnvRef, error) {
		var r store.EnvRef
		err := sc.Scan(&r.Org, &r.Project, &r.Environment)
		return r, err
	})
	return out, s.translate(err)
}

const manifestColumns = `org, project, environment, version, payload, key_id, signature, digest,
	publisher_epoch, issued_at, expires_at`

func scanManifest(sc interface{ Scan(...any) error }) (*store.StoredManifest, error) {
	m := &store.StoredManifest{Signed: &manifestv1.SignedManifest{}}
	var version, epoch, issued, expires int64
	if err := sc.Scan(&m.Ref.Org, &m.Ref.Project, &m.Ref.Environment, &version, &m.Signed.Payload, &m.Signed.KeyId,
		&m.Signed.Signature, &m.Digest, &epoch, &issued, &expires); err != nil {
		return nil, err
	}
	m.Version, m.Epoch = uint64(version), uint64(epoch)
	m.IssuedAt, m.ExpiresAt = fromMicros(issued), fromMicros(expires)
	return m, nil
}

// LatestManifest returns the latest stored version of ref.
func (s *Store) LatestManifest(ctx context.Context, ref store.EnvRef) (*store.StoredManifest, error) {
	m, err := scanManifest(s.r().row(ctx, `SELECT `+manifestColumns+` FROM manifests
		WHERE org = ? AND project = ? AND environment = ? ORDER BY version DESC LIMIT 1`,
		ref.Org, ref.Project, ref.Environment))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.E(errs.NotFound, "no manifest published for %s/%s/%s", ref.Org, ref.Project, ref.Environment)
	}
	return m, s.translate(err)
}

// GetManifest returns one stored version of ref.
func (s *Store) GetManifest(ctx context.Context, ref store.EnvRef, version uint64) (*store.StoredManifest, error) {
	m, err := scanManifest(s.r().row(ctx, `SELECT `+manifestColumns+` FROM manifests
		WHERE org = ? AND project = ? AND environment = ? AND version = ?`,
		ref.Org, ref.Project, ref.Environment, int64(version)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errs.E(errs.NotFound, "version %d of %s/%s/%s is not stored", version, ref.Org, ref.Project, ref.Environment)
	}
	return m, s.translate(err)
}

// ManifestRange returns the stored versions from..to of ref, oldest first.
func (s *Store) ManifestRange(ctx context.Context, ref store.EnvRef, from, to uint64) ([]*store.StoredManifest, error) {
	rows, err := s.r().query(ctx, `SELECT `+manifestColumns+` FROM manifests
		WHERE org = ? AND project = ? AND environment = ? AND version >= ? AND version <= ? ORDER BY version`,
		ref.Org, ref.Project, ref.Environment, int64(from), int64(to))
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, scanManifest)
	return out, s.translate(err)
}

// ManifestHeads lists the latest version of every environment that has one.
func (s *Store) ManifestHeads(ctx context.Context) ([]store.ManifestHead, error) {
	rows, err := s.r().query(ctx, `SELECT org, project, environment, version, expires_at FROM manifest_heads
		ORDER BY org, project, environment`)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.ManifestHead, error) {
		var h store.ManifestHead
		var v, e int64
		err := sc.Scan(&h.Ref.Org, &h.Ref.Project, &h.Ref.Environment, &v, &e)
		h.Version, h.ExpiresAt = uint64(v), fromMicros(e)
		return h, err
	})
	return out, s.translate(err)
}

// CommitManifests stores new versions under the fencing epoch, marks outbox rows
// published and prunes history, in one transaction.
func (s *Store) CommitManifests(ctx context.Context, epoch uint64, ms []*store.StoredManifest, published []int64, keep int) error {
	return s.inTx(ctx, func(t *Tx) error {
		x := t.q()
		// The shared row lock makes NextPublisherEpoch wait for this transaction.
		lock := s.d.ForUpdate
		if lock != "" {
			lock = " FOR SHARE"
		}
		var current int64
		if err := x.row(ctx, `SELECT epoch FROM publisher_epoch WHERE id = 1`+lock).Scan(&current); err != nil {
			return err
		}
		if uint64(current) != epoch {
			return errs.E(errs.FailedPrecondition, "publisher epoch %d is fenced off (current epoch %d)", epoch, current)
		}
		for _, m := range ms {
			if err := t.storeManifest(ctx, m, keep); err != nil {
				return err
			}
		}
		for len(published) > 0 {
			n := min(len(published), 500)
			args := make([]any, 0, n+1)
			args = append(args, micros(t.now))
			for _, id := range published[:n] {
				args = append(args, id)
			}
			if _, err := x.exec(ctx, `UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND id IN (?`+
				strings.Repeat(", ?", n-1)+`)`, args...); err != nil {
				return err
			}
			published = published[n:]
		}
		return nil
	})
}

func (t *Tx) storeManifest(ctx context.Context, m *store.StoredManifest, keep int) error {
	x := t.q()
	r := m.Ref
	v := int64(m.Version)
	if m.Version == 0 || m.Signed == nil {
		return errs.Invalid("version", "a stored manifest needs a version and a signed envelope")
	}
	if m.Version == 1 {
		// A concurrent first version collides on the primary key (AlreadyExists);
		// report it as the same conflict as any other out-of-order version.
		if _, err := x.exec(ctx, `INSERT INTO manifest_heads (org, project, environment, version, expires_at)
			VALUES (?, ?, ?, 1, ?)`, r.Org, r.Project, r.Environment, micros(m.ExpiresAt)); err != nil {
			if errors.Is(t.s.translate(err), errs.AlreadyExists) {
				return errs.E(errs.Aborted, "version 1 of %s/%s/%s already exists", r.Org, r.Project, r.Environment)
			}
			return err
		}
	} else {
		res, err := x.exec(ctx, `UPDATE manifest_heads SET version = ?, expires_at = ?
			WHERE org = ? AND project = ? AND environment = ? AND version = ?`,
			v, micros(m.ExpiresAt), r.Org, r.Project, r.Environment, v-1)
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil {
			return err
		} else if n != 1 {
			return errs.E(errs.Aborted, "version %d of %s/%s/%s does not follow the latest stored version", m.Version,
				r.Org, r.Project, r.Environment)
		}
	}
	if _, err := x.exec(ctx, `INSERT INTO manifests (`+manifestColumns+`, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Org, r.Project, r.Environment, v, m.Signed.GetPayload(),
		m.Signed.GetKeyId(), m.Signed.GetSignature(), m.Digest, int64(m.Epoch), micros(m.IssuedAt), micros(m.ExpiresAt),
		micros(t.now)); err != nil {
		return err
	}
	if _, err := x.exec(ctx, `UPDATE environments SET manifest_version = ? WHERE org = ? AND project = ? AND key = ?`,
		v, r.Org, r.Project, r.Environment); err != nil {
		return err
	}
	if keep > 0 && v > int64(keep) {
		if _, err := x.exec(ctx, `DELETE FROM manifests WHERE org = ? AND project = ? AND environment = ? AND version <= ?`,
			r.Org, r.Project, r.Environment, v-int64(keep)); err != nil {
			return err
		}
	}
	return nil
}

// PruneOutbox deletes at most limit outbox rows that were marked published before
// before (oldest first) and returns how many it deleted. Unpublished rows are never
// deleted. The publisher calls it in small batches, so each transaction stays short.
func (s *Store) PruneOutbox(ctx context.Context, before time.Time, limit int) (int64, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int64
	err := s.inTx(ctx, func(t *Tx) error {
		res, err := t.q().exec(ctx, `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox
			WHERE published_at IS NOT NULL AND published_at < ? ORDER BY published_at, id LIMIT ?)`,
			micros(before), limit)
		if err != nil {
			return err
		}
		n, err = affected(res)
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
