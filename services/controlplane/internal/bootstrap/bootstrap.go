// Package bootstrap creates the first organization of an installation, its owner
// member and an owner API token. It is idempotent: what exists is reused, so
// `serve` can run it at every start from FLAGFORGE_BOOTSTRAP_* variables.
package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// minSecretLen is the shortest caller-chosen token accepted: the prefix and 32
// characters.
const minSecretLen = len(auth.APITokenPrefix) + 32

// actorName is the audit actor of bootstrap writes.
const actorName = "bootstrap"

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Config is the automation form of bootstrap: all three set, or none.
type Config struct {
	Org   string `env:"BOOTSTRAP_ORG"`
	Email string `env:"BOOTSTRAP_EMAIL"`
	// Token is the caller-chosen owner token secret ("ffat_" + at least 32 chars).
	Token string `env:"BOOTSTRAP_TOKEN"`
}

// Enabled reports whether serve should bootstrap at start.
func (c Config) Enabled() bool { return c.Org != "" || c.Email != "" || c.Token != "" }

// Validate checks the configuration.
func (c Config) Validate() error {
	if !c.Enabled() {
		return nil
	}
	if c.Org == "" || c.Email == "" || c.Token == "" {
		return errors.New("bootstrap: FLAGFORGE_BOOTSTRAP_ORG, _EMAIL and _TOKEN go together")
	}
	return CheckToken(c.Token)
}

// CheckToken checks a caller-chosen token secret.
func CheckToken(secret string) error {
	if len(secret) < minSecretLen || secret[:len(auth.APITokenPrefix)] != auth.APITokenPrefix {
		return fmt.Errorf("bootstrap: the token must start with %q and have at least %d characters", auth.APITokenPrefix, minSecretLen)
	}
	return nil
}

// Store is what bootstrap needs.
type Store interface {
	GetOrg(ctx context.Context, org string) (*adminv1.Organization, error)
	CreateOrg(ctx context.Context, m store.WriteMeta, org *adminv1.Organization) (*adminv1.Organization, error)
	CreateMember(ctx context.Context, m store.WriteMeta, org string, mem *adminv1.Member, role adminv1.Role) (*adminv1.Member, error)
	MemberByOIDCSubject(ctx context.Context, org, subject, email string) (*adminv1.Member, []*adminv1.RoleBinding, error)
	GrantRole(ctx context.Context, m store.WriteMeta, org string, b *adminv1.RoleBinding) (*adminv1.RoleBinding, error)
	CreateAPIToken(ctx context.Context, m store.WriteMeta, org string, t *adminv1.ApiToken, hash []byte) (*adminv1.ApiToken, error)
	Authenticate(ctx context.Context, hash []byte, now time.Time) (*store.Principal, error)
}

// Result is what Run did.
type Result struct {
	Org    *adminv1.Organization
	Member *adminv1.Member
	// Token is the owner token (nil when the given secret already worked).
	Token *adminv1.ApiToken
	// Secret is the token secret (the caller's, or a new one).
	Secret string
	// CreatedOrg tells a first bootstrap from a repeated one.
	CreatedOrg bool
}

// Run makes sure organization org exists with an owner member email holding an
// owner token. With secret empty a new token is minted; with a secret that
// already authenticates as a member of org nothing is written.
func Run(ctx context.Context, st Store, org, email, secret string) (*Result, error) {
	if !keyRE.MatchString(org) {
		return nil, errs.Invalid("org", "must be a lowercase slug")
	}
	if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
		return nil, errs.Invalid("email", "must be an email address")
	}
	m := store.WriteMeta{ActorName: actorName, Comment: "bootstrap"}
	res := &Result{}
	o, err := st.GetOrg(ctx, org)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		o, err = st.CreateOrg(ctx, m, &adminv1.Organization{Key: org, Name: org})
		if err != nil {
			return nil, fmt.Errorf("create organization: %w", err)
		}
		res.CreatedOrg = true
	case err != nil:
		return nil, fmt.Errorf("read organization: %w", err)
	}
	res.Org = o

	mem, bindings, err := st.MemberByOIDCSubject(ctx, org, "", email)
	switch {
	case errs.KindOf(err) == errs.NotFound:
		mem, err = st.CreateMember(ctx, m, org, &adminv1.Member{Kind: adminv1.MemberKind_MEMBER_KIND_USER, Email: email, Name: email}, adminv1.Role_ROLE_OWNER)
		if err != nil {
			return nil, fmt.Errorf("create owner: %w", err)
		}
	case err != nil:
		return nil, fmt.Errorf("find owner: %w", err)
	default:
		if !isOwner(bindings) {
			if _, err := st.GrantRole(ctx, m, org, &adminv1.RoleBinding{MemberId: mem.GetId(), Role: adminv1.Role_ROLE_OWNER, Scope: &adminv1.Scope{}}); err != nil {
				return nil, fmt.Errorf("grant owner: %w", err)
			}
		}
	}
	res.Member = mem

	var hash []byte
	if secret == "" {
		secret, hash = auth.NewSecret(auth.APITokenPrefix)
	} else {
		if err := CheckToken(secret); err != nil {
			return nil, err
		}
		hash = auth.HashSecret(secret)
		p, err := st.Authenticate(ctx, hash, time.Now())
		switch {
		case err == nil && p.Org == org && p.Member.GetId() == mem.GetId():
			res.Secret = secret
			return res, nil
		case err == nil:
			return nil, errors.New("bootstrap: the token already belongs to another member")
		case errs.KindOf(err) != errs.Unauthenticated:
			return nil, fmt.Errorf("check token: %w", err)
		}
	}
	tok, err := st.CreateAPIToken(ctx, m, org, &adminv1.ApiToken{Name: "bootstrap", MemberId: mem.GetId()}, hash)
	if err != nil {
		return nil, fmt.Errorf("create token: %w", err)
	}
	res.Token, res.Secret = tok, secret
	return res, nil
}

func isOwner(bs []*adminv1.RoleBinding) bool {
	for _, b := range bs {
		if b.GetRole() == adminv1.Role_ROLE_OWNER && b.GetScope().GetProject() == "" {
			return true
		}
	}
	return false
}
