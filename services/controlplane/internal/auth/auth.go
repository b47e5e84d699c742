// Package auth authenticates admin API callers: API tokens ("Bearer ffat_...",
// looked up by their SHA-256 hash) and, when configured, OIDC ID tokens (JWTs
// verified against the issuer's keys and mapped to a member by "iss|sub", falling
// back to a verified email). It also mints the secrets of tokens and SDK keys.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config configures authentication. OIDC is off unless OIDCIssuer is set.
type Config struct {
	// OIDCIssuer is the issuer URL (discovery at /.well-known/openid-configuration).
	OIDCIssuer string `env:"OIDC_ISSUER"`
	// OIDCAudience is the expected "aud" (the client id).
	OIDCAudience string `env:"OIDC_AUDIENCE"`
	// OIDCClientSecret is the client's secret, for issuers that register the
	// console as a confidential client (optional: PKCE alone otherwise). Only
	// the console sign-in's code exchange (package oidclogin) uses it.
	OIDCClientSecret string `env:"OIDC_CLIENT_SECRET"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.OIDCIssuer == "" {
		if c.OIDCAudience != "" || c.OIDCClientSecret != "" {
			return errors.New("auth: OIDC audience or client secret set without an issuer")
		}
		return nil
	}
	u, err := url.Parse(c.OIDCIssuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("auth: OIDC issuer %q is not an http(s) URL", c.OIDCIssuer)
	}
	if c.OIDCAudience == "" {
		return errors.New("auth: OIDC issuer set without an audience")
	}
	return nil
}

// TokenStore resolves API token hashes.
type TokenStore interface {
	Authenticate(ctx context.Context, hash []byte, now time.Time) (*store.Principal, error)
}

// MemberFinder maps OIDC identities to members.
type MemberFinder interface {
	MemberByOIDCSubject(ctx context.Context, org, subject, email string) (*adminv1.Member, []*adminv1.RoleBinding, error)
}

// Authenticator turns an authorization header into a Principal.
type Authenticator struct {
	tokens   TokenStore
	members  MemberFinder
	verifier *oidc.IDTokenVerifier
	now      func() time.Time
}

// New builds an Authenticator. With OIDC configured it fetches the issuer's
// discovery document now (ctx bounds that fetch; the key set is fetched lazily).
// now is the clock (nil: time.Now).
func New(ctx context.Context, cfg Config, tokens TokenStore, members MemberFinder, now func() time.Time) (*Authenticator, error) {
	if now == nil {
		now = time.Now
	}
	a := &Authenticator{tokens: tokens, members: members, now: now}
	if cfg.OIDCIssuer != "" {
		p, err := oidc.NewProvider(ctx, cfg.OIDCIssuer)
		if err != nil {
			return nil, fmt.Errorf("auth: OIDC discovery: %w", err)
		}
		a.verifier = p.Verifier(&oidc.Config{
			ClientID:             cfg.OIDCAudience,
			Now:                  now,
			SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA},
		})
	}
	return a, nil
}

// Authenticate resolves authorization (the header value, "Bearer <credential>").
// org is the organization the request addresses; OIDC identities are looked up in
// it (API tokens carry their own). Every failure is errs.Unauthenticated except an
// OIDC identity with no member in org, which is errs.NotFound like any other
// resource of a foreign organization.
func (a *Authenticator) Authenticate(ctx context.Context, authorization, org string) (*actor.Principal, error) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	cred = strings.TrimSpace(cred)
	if authorization == "" {
		return nil, errs.E(errs.Unauthenticated, "missing authorization header")
	}
	if !ok || !strings.EqualFold(scheme, "bearer") || cred == "" {
		return nil, errs.E(errs.Unauthenticated, `authorization must be "Bearer <token>"`)
	}
	if strings.HasPrefix(cred, APITokenPrefix) {
		return a.token(ctx, cred)
	}
	if a.verifier == nil {
		return nil, errs.E(errs.Unauthenticated, "invalid token")
	}
	return a.oidc(ctx, cred, org)
}

func (a *Authenticator) token(ctx context.Context, secret string) (*actor.Principal, error) {
	p, err := a.tokens.Authenticate(ctx, HashSecret(secret), a.now().UTC())
	if err != nil {
		if errs.KindOf(err) == errs.Unauthenticated || errs.KindOf(err) == errs.NotFound {
			return nil, errs.E(errs.Unauthenticated, "invalid, expired or revoked token")
		}
		return nil, err
	}
	return &actor.Principal{Org: p.Org, Member: p.Member, Bindings: p.Bindings, TokenID: p.TokenID, Method: "token", Issuer: p.Issuer}, nil
}

type oidcClaims struct {
	Email         string `json:"email"`
	EmailVerified *bool  `json:"email_verified"`
}

func (a *Authenticator) oidc(ctx context.Context, raw, org string) (*actor.Principal, error) {
	tok, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, errs.Wrap(errs.Unauthenticated, err, "invalid OIDC token")
	}
	if org == "" {
		return nil, errs.E(errs.Unauthenticated, "OIDC tokens can only call methods that name an organization")
	}
	var c oidcClaims
	if err := tok.Claims(&c); err != nil {
		return nil, errs.Wrap(errs.Unauthenticated, err, "invalid OIDC claims")
	}
	email := c.Email
	if c.EmailVerified != nil && !*c.EmailVerified {
		email = "" // an unverified address must not grant anyone's membership
	}
	m, bindings, err := a.members.MemberByOIDCSubject(ctx, org, tok.Issuer+"|"+tok.Subject, email)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, errs.E(errs.NotFound, "organization %q not found", org)
		}
		return nil, err
	}
	return &actor.Principal{Org: org, Member: m, Bindings: bindings, Method: "oidc"}, nil
}
