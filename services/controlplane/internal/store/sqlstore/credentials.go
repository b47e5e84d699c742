package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

func tokenPath(id string) string { return "api_tokens/" + id }

func sdkKeyPath(ref store.EnvRef, id string) string {
	return envPath(ref.Project, ref.Environment) + "/sdk_keys/" + id
}

func tsMicros(t *timestamppb.Timestamp) int64 {
	if t == nil {
		return 0
	}
	return micros(t.AsTime())
}

const tokenColumns = `id, name, member_id, expire_at, revoked_at, created_at, last_used_at, issuer_id`

func scanToken(sc interface{ Scan(...any) error }) (*adminv1.ApiToken, error) {
	var t adminv1.ApiToken
	var e, r, c, u int64
	if err := sc.Scan(&t.Id, &t.Name, &t.MemberId, &e, &r, &c, &u, &t.IssuerId); err != nil {
		return nil, err
	}
	t.ExpireTime, t.RevokeTime, t.CreateTime, t.LastUsedTime = ts(e), ts(r), ts(c), ts(u)
	return &t, nil
}

// CreateAPIToken stores a token (only the secret's hash) for a member of org.
func (s *Store) CreateAPIToken(ctx context.Context, m store.WriteMeta, org string, tok *adminv1.ApiToken, hash []byte) (*adminv1.ApiToken, error) {
	// The secret's hash is not part of the fingerprint: a retry carries a new secret,
	// and must still return the first token.
	return create(ctx, s, m, org, "api_token.create", requestHash(tok),
		func() *adminv1.ApiToken { return &adminv1.ApiToken{} },
		func(t *Tx) (*adminv1.ApiToken, error) {
			if _, err := s.loadMember(ctx, t.q(), org, tok.GetMemberId(), false); err != nil {
				return nil, err
			}
			id, err := newID()
			if err != nil {
				return nil, err
			}
			out := &adminv1.ApiToken{Id: id, Name: tok.GetName(), MemberId: tok.GetMemberId(),
				ExpireTime: tok.GetExpireTime(), CreateTime: timestamppb.New(t.now), IssuerId: tok.GetIssuerId()}
			if _, err := t.q().exec(ctx, `INSERT INTO api_tokens (id, org, member_id, name, hash, expire_at, revoked_at, created_at, last_used_at, issuer_id)
				VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?)`, id, org, out.MemberId, out.Name, hash, tsMicros(out.ExpireTime),
				micros(t.now), out.IssuerId); err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, change{org: org, action: "api_token.create", resourceType: "api_token",
				resource: tokenPath(id), after: out})
		})
}

// ListAPITokens lists an organization's tokens by id.
func (s *Store) ListAPITokens(ctx context.Context, org string, p store.Page) ([]*adminv1.ApiToken, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE org = ? AND id > ? ORDER BY id LIMIT ?`,
		org, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanToken)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.ApiToken).GetId)
	return out, next, nil
}

// RevokeAPIToken revokes a token; revoking a revoked token changes nothing.
func (s *Store) RevokeAPIToken(ctx context.Context, m store.WriteMeta, org, id string) (*adminv1.ApiToken, error) {
	var out *adminv1.ApiToken
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := scanToken(t.q().row(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE org = ? AND id = ?`+s.d.ForUpdate, org, id))
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("API token", id)
		}
		if err != nil {
			return err
		}
		if before.RevokeTime != nil {
			out = before
			return nil
		}
		after := proto.Clone(before).(*adminv1.ApiToken)
		after.RevokeTime = timestamppb.New(t.now)
		if _, err := t.q().exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE org = ? AND id = ?`, micros(t.now), org, id); err != nil {
			return err
		}
		out = after
		return t.record(ctx, m, change{org: org, action: "api_token.revoke", resourceType: "api_token",
			resource: tokenPath(id), before: before, after: after})
	})
	return out, err
}

// Authenticate resolves an API token hash to its principal.
func (s *Store) Authenticate(ctx context.Context, hash []byte, now time.Time) (*store.Principal, error) {
	var id, org, memberID, issuer string
	var expire, revoked int64
	err := s.r().row(ctx, `SELECT id, org, member_id, expire_at, revoked_at, issuer_id FROM api_tokens WHERE hash = ?`, hash).
		Scan(&id, &org, &memberID, &expire, &revoked, &issuer)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, errs.E(errs.Unauthenticated, "unknown token")
	case err != nil:
		return nil, s.translate(err)
	case revoked != 0:
		return nil, errs.E(errs.Unauthenticated, "token revoked")
	case expire != 0 && expire <= micros(now):
		return nil, errs.E(errs.Unauthenticated, "token expired")
	}
	mem, bindings, err := s.GetMember(ctx, org, memberID)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, errs.E(errs.Unauthenticated, "token's member no longer exists")
		}
		return nil, err
	}
	// Best effort: a failure to record last use must not refuse the request.
	_, _ = s.r().exec(ctx, `UPDATE api_tokens SET last_used_at = ? WHERE id = ?`, micros(now), id)
	return &store.Principal{Org: org, Member: mem, Bindings: bindings, TokenID: id, Issuer: issuer}, nil
}

const sdkKeyColumns = `id, name, kind, prefix, expire_at, revoked_at, created_at`

func scanSDKKey(sc interface{ Scan(...any) error }) (*adminv1.SdkKey, error) {
	var k adminv1.SdkKey
	var kind int32
	var e, r, c int64
	if err := sc.Scan(&k.Id, &k.Name, &kind, &k.Prefix, &e, &r, &c); err != nil {
		return nil, err
	}
	k.Kind, k.ExpireTime, k.RevokeTime, k.CreateTime = manifestv1.SdkKeyKind(kind), ts(e), ts(r), ts(c)
	return &k, nil
}

func (s *Store) loadSDKKey(ctx context.Context, x q, ref store.EnvRef, id string) (*adminv1.SdkKey, error) {
	k, err := scanSDKKey(x.row(ctx, `SELECT `+sdkKeyColumns+` FROM sdk_keys
		WHERE org = ? AND project = ? AND environment = ? AND id = ?`+s.d.ForUpdate, ref.Org, ref.Project, ref.Environment, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("SDK key", id)
	}
	return k, err
}

func (t *Tx) insertSDKKey(ctx context.Context, ref store.EnvRef, k *adminv1.SdkKey, hash []byte) (*adminv1.SdkKey, error) {
	id, err := newID()
	if err != nil {
		return nil, err
	}
	out := &adminv1.SdkKey{Id: id, Name: k.GetName(), Kind: k.GetKind(), Prefix: k.GetPrefix(),
		ExpireTime: k.GetExpireTime(), CreateTime: timestamppb.New(t.now)}
	_, err = t.q().exec(ctx, `INSERT INTO sdk_keys (id, org, project, environment, name, kind, prefix, hash, expire_at, revoked_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)`, id, ref.Org, ref.Project, ref.Environment, out.Name, int32(out.Kind),
		out.Prefix, hash, tsMicros(out.ExpireTime), micros(t.now))
	return out, err
}

// CreateSDKKey stores an SDK key (only the secret's hash) for an environment.
func (s *Store) CreateSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, k *adminv1.SdkKey, hash []byte) (*adminv1.SdkKey, error) {
	// Fingerprint without the secret (hash and prefix): a retry carries a new one.
	return create(ctx, s, m, ref.Org, "sdk_key.create", requestHash(ref.Project, ref.Environment, k.GetName(), k.GetKind().String()),
		func() *adminv1.SdkKey { return &adminv1.SdkKey{} },
		func(t *Tx) (*adminv1.SdkKey, error) {
			if _, err := s.loadEnv(ctx, t.q(), ref, false); err != nil {
				return nil, err
			}
			out, err := t.insertSDKKey(ctx, ref, k, hash)
			if err != nil {
				return nil, err
			}
			return out, t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
				action: "sdk_key.create", resourceType: "sdk_key", resource: sdkKeyPath(ref, out.Id), after: out})
		})
}

// ListSDKKeys lists an environment's SDK keys by id.
func (s *Store) ListSDKKeys(ctx context.Context, ref store.EnvRef, p store.Page) ([]*adminv1.SdkKey, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	rows, err := s.r().query(ctx, `SELECT `+sdkKeyColumns+` FROM sdk_keys WHERE org = ? AND project = ? AND environment = ?
		AND id > ? ORDER BY id LIMIT ?`, ref.Org, ref.Project, ref.Environment, after, size+1)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, err := collect(rows, scanSDKKey)
	if err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, (*adminv1.SdkKey).GetId)
	return out, next, nil
}

// RotateSDKKey gives the old key an expiry and creates its successor.
func (s *Store) RotateSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, oldExpires time.Time, newKey *adminv1.SdkKey, hash []byte) (*adminv1.SdkKey, *adminv1.SdkKey, error) {
	var old, created *adminv1.SdkKey
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSDKKey(ctx, t.q(), ref, id)
		if err != nil {
			return err
		}
		if before.RevokeTime != nil {
			return errs.E(errs.FailedPrecondition, "SDK key %q is revoked", id)
		}
		old = proto.Clone(before).(*adminv1.SdkKey)
		old.ExpireTime = timestamppb.New(oldExpires.UTC().Truncate(time.Microsecond))
		if _, err := t.q().exec(ctx, `UPDATE sdk_keys SET expire_at = ? WHERE id = ?`, micros(oldExpires), id); err != nil {
			return err
		}
		if created, err = t.insertSDKKey(ctx, ref, newKey, hash); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "sdk_key.rotate", resourceType: "sdk_key", resource: sdkKeyPath(ref, id),
			before: map[string]proto.Message{"old": before},
			after:  map[string]proto.Message{"old": old, "new": created}})
	})
	if err != nil {
		return nil, nil, err
	}
	return old, created, nil
}

// RevokeSDKKey revokes an SDK key; revoking a revoked key changes nothing.
func (s *Store) RevokeSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string) (*adminv1.SdkKey, error) {
	var out *adminv1.SdkKey
	err := s.inTx(ctx, func(t *Tx) error {
		before, err := s.loadSDKKey(ctx, t.q(), ref, id)
		if err != nil {
			return err
		}
		if before.RevokeTime != nil {
			out = before
			return nil
		}
		out = proto.Clone(before).(*adminv1.SdkKey)
		out.RevokeTime = timestamppb.New(t.now)
		if _, err := t.q().exec(ctx, `UPDATE sdk_keys SET revoked_at = ? WHERE id = ?`, micros(t.now), id); err != nil {
			return err
		}
		return t.record(ctx, m, change{org: ref.Org, project: ref.Project, env: ref.Environment,
			action: "sdk_key.revoke", resourceType: "sdk_key", resource: sdkKeyPath(ref, id), before: before, after: out})
	})
	return out, err
}
