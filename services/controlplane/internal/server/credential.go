package server

import (
	"context"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// SDK key rotation overlap: the default and the longest allowed.
const (
	defaultOverlap = 24 * time.Hour
	maxOverlap     = 30 * 24 * time.Hour
	sdkKeyPrefix   = 12 // characters of the secret kept to recognise a key
)

// APITokenService implements adminv1.ApiTokenServiceServer.
type APITokenService struct {
	adminv1.UnimplementedApiTokenServiceServer
	store interface {
		CreateAPIToken(ctx context.Context, m store.WriteMeta, org string, t *adminv1.ApiToken, hash []byte) (*adminv1.ApiToken, error)
		ListAPITokens(ctx context.Context, org string, p store.Page) ([]*adminv1.ApiToken, string, error)
		RevokeAPIToken(ctx context.Context, m store.WriteMeta, org, id string) (*adminv1.ApiToken, error)
		Authenticate(ctx context.Context, hash []byte, now time.Time) (*store.Principal, error)
		GetMember(ctx context.Context, org, id string) (*adminv1.Member, []*adminv1.RoleBinding, error)
	}
	now func() time.Time
}

// issuerOf is who mints a token for member when p calls: the caller, except that
// a member minting their own token with a credential someone else issued keeps
// that issuer (so a token minted for you cannot be laundered into one that looks
// like your own).
func issuerOf(p *actor.Principal, member string) string {
	if member == p.ID() && p.Issuer != "" {
		return p.Issuer
	}
	return p.ID()
}

// CreateApiToken mints a token for a member (default: the caller) and returns its
// secret this once. Admins may mint tokens for other members (without SSO it is
// how a member gets a first credential); the token records its issuer, and a
// token minted for another member never approves or applies its issuer's change
// requests (package governance). A retry with the same idempotency key returns the first token
// without a secret: the secret was never stored.
func (s *APITokenService) CreateApiToken(ctx context.Context, req *adminv1.CreateApiTokenRequest) (*adminv1.CreateApiTokenResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("name", req.GetName(), maxName, true)
	c.text("member_id", req.GetMemberId(), 100, false)
	if et := req.GetExpireTime(); et != nil && !et.AsTime().After(s.now()) {
		c.fail("expire_time", "must be in the future")
	}
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	p := actor.PrincipalFrom(ctx)
	memberID := req.GetMemberId()
	if memberID == "" {
		memberID = p.ID()
	}
	if memberID != p.ID() {
		_, bs, err := s.store.GetMember(ctx, req.GetOrg(), memberID)
		if err != nil {
			return nil, err
		}
		if err := ownerGuard(ctx, req.GetOrg(), bs); err != nil {
			return nil, err
		}
	}
	secret, hash := auth.NewSecret(auth.APITokenPrefix)
	tok, err := s.store.CreateAPIToken(ctx, meta(ctx, idem, "", ""), req.GetOrg(),
		&adminv1.ApiToken{Name: req.GetName(), MemberId: memberID, ExpireTime: req.GetExpireTime(), IssuerId: issuerOf(p, memberID)}, hash)
	if err != nil {
		return nil, err
	}
	if idem != "" {
		// A replay returns the first token, whose hash is not ours.
		if got, err := s.store.Authenticate(ctx, hash, s.now()); err != nil || got.TokenID != tok.GetId() {
			secret = ""
		}
	}
	return &adminv1.CreateApiTokenResponse{Token: tok, Secret: secret}, nil
}

// ListApiTokens lists an organization's tokens (never their secrets).
func (s *APITokenService) ListApiTokens(ctx context.Context, req *adminv1.ListApiTokensRequest) (*adminv1.ListApiTokensResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ts, next, err := s.store.ListAPITokens(ctx, req.GetOrg(), page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListApiTokensResponse{Tokens: ts, NextPageToken: next}, nil
}

// RevokeApiToken revokes a token at once.
func (s *APITokenService) RevokeApiToken(ctx context.Context, req *adminv1.RevokeApiTokenRequest) (*adminv1.RevokeApiTokenResponse, error) {
	var c checks
	c.key("org", req.GetOrg())
	c.text("token_id", req.GetTokenId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	t, err := s.store.RevokeAPIToken(ctx, meta(ctx, "", "", ""), req.GetOrg(), req.GetTokenId())
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeApiTokenResponse{Token: t}, nil
}

// SDKKeyService implements adminv1.SdkKeyServiceServer.
type SDKKeyService struct {
	adminv1.UnimplementedSdkKeyServiceServer
	store interface {
		CreateSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, k *adminv1.SdkKey, hash []byte) (*adminv1.SdkKey, error)
		ListSDKKeys(ctx context.Context, ref store.EnvRef, p store.Page) ([]*adminv1.SdkKey, string, error)
		RotateSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string, oldExpires time.Time, newKey *adminv1.SdkKey, hash []byte) (old, created *adminv1.SdkKey, err error)
		RevokeSDKKey(ctx context.Context, m store.WriteMeta, ref store.EnvRef, id string) (*adminv1.SdkKey, error)
	}
	now func() time.Time
}

func newSDKSecret(kind manifestv1.SdkKeyKind) (secret string, hash []byte) {
	if kind == manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT {
		return auth.NewSecret(auth.ClientSDKKeyPrefix)
	}
	return auth.NewSecret(auth.ServerSDKKeyPrefix)
}

// CreateSdkKey mints an SDK key for one environment and returns its secret this
// once (a replay with the same idempotency key returns the key without it).
func (s *SDKKeyService) CreateSdkKey(ctx context.Context, req *adminv1.CreateSdkKeyRequest) (*adminv1.CreateSdkKeyResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.text("name", req.GetName(), maxName, true)
	switch req.GetKind() {
	case manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT:
	default:
		c.fail("kind", "must be SDK_KEY_KIND_SERVER or SDK_KEY_KIND_CLIENT")
	}
	idem, err := idempotencyKey(ctx, req.GetIdempotencyKey())
	if c.err != nil || err != nil {
		return nil, firstErr(c.err, err)
	}
	secret, hash := newSDKSecret(req.GetKind())
	k, err := s.store.CreateSDKKey(ctx, meta(ctx, idem, "", ""), ref,
		&adminv1.SdkKey{Name: req.GetName(), Kind: req.GetKind(), Prefix: secret[:sdkKeyPrefix]}, hash)
	if err != nil {
		return nil, err
	}
	if k.GetPrefix() != secret[:sdkKeyPrefix] {
		secret = "" // idempotent replay: the first key's secret is gone
	}
	return &adminv1.CreateSdkKeyResponse{Key: k, Secret: secret}, nil
}

// ListSdkKeys lists an environment's SDK keys.
func (s *SDKKeyService) ListSdkKeys(ctx context.Context, req *adminv1.ListSdkKeysRequest) (*adminv1.ListSdkKeysResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	page := c.page(req.GetPageSize(), req.GetPageToken())
	if c.err != nil {
		return nil, c.err
	}
	ks, next, err := s.store.ListSDKKeys(ctx, ref, page)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSdkKeysResponse{Keys: ks, NextPageToken: next}, nil
}

func (s *SDKKeyService) find(ctx context.Context, ref store.EnvRef, id string) (*adminv1.SdkKey, error) {
	for page := (store.Page{Size: maxPageSize}); ; {
		ks, next, err := s.store.ListSDKKeys(ctx, ref, page)
		if err != nil {
			return nil, err
		}
		for _, k := range ks {
			if k.GetId() == id {
				return k, nil
			}
		}
		if next == "" {
			return nil, errs.E(errs.NotFound, "sdk key %q not found", id)
		}
		page.Token = next
	}
}

// RotateSdkKey creates a successor of a key; the old one keeps working for
// overlap_seconds (default a day, at most 30 days).
func (s *SDKKeyService) RotateSdkKey(ctx context.Context, req *adminv1.RotateSdkKeyRequest) (*adminv1.RotateSdkKeyResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.text("key_id", req.GetKeyId(), 100, true)
	overlap := time.Duration(req.GetOverlapSeconds()) * time.Second
	if req.GetOverlapSeconds() < 0 || overlap > maxOverlap {
		c.fail("overlap_seconds", "must be between 0 and %d", int64(maxOverlap/time.Second))
	}
	if c.err != nil {
		return nil, c.err
	}
	if overlap == 0 {
		overlap = defaultOverlap
	}
	old, err := s.find(ctx, ref, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	if old.GetRevokeTime() != nil {
		return nil, errs.E(errs.FailedPrecondition, "sdk key %q is revoked", req.GetKeyId())
	}
	secret, hash := newSDKSecret(old.GetKind())
	o, n, err := s.store.RotateSDKKey(ctx, meta(ctx, "", "", ""), ref, old.GetId(), s.now().Add(overlap).UTC(),
		&adminv1.SdkKey{Name: old.GetName(), Kind: old.GetKind(), Prefix: secret[:sdkKeyPrefix]}, hash)
	if err != nil {
		return nil, err
	}
	return &adminv1.RotateSdkKeyResponse{OldKey: o, NewKey: n, Secret: secret}, nil
}

// RevokeSdkKey revokes a key at once.
func (s *SDKKeyService) RevokeSdkKey(ctx context.Context, req *adminv1.RevokeSdkKeyRequest) (*adminv1.RevokeSdkKeyResponse, error) {
	var c checks
	ref := envRef(&c, req.GetOrg(), req.GetProject(), req.GetEnvironment())
	c.text("key_id", req.GetKeyId(), 100, true)
	if c.err != nil {
		return nil, c.err
	}
	k, err := s.store.RevokeSDKKey(ctx, meta(ctx, "", "", ""), ref, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	return &adminv1.RevokeSdkKeyResponse{Key: k}, nil
}
