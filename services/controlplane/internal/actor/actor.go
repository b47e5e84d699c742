// Package actor carries who is calling (the authenticated Principal) and the
// request id through a request's context. The access interceptor (package rpc)
// fills both in; service implementations read them to authorize fine-grained
// operations and to stamp audit entries.
package actor

import (
	"context"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Principal is an authenticated caller: a member of exactly one organization with
// its role bindings there.
type Principal struct {
	// Org is the key of the organization the caller belongs to.
	Org string
	// Member is the member the credential acts as.
	Member *adminv1.Member
	// Bindings are the member's role bindings in Org.
	Bindings []*adminv1.RoleBinding
	// TokenID is set when the caller used an API token (empty for OIDC).
	TokenID string
	// Method says how the caller authenticated: "token" or "oidc".
	Method string
	// Issuer is the member who minted the API token ("" for OIDC, or a token
	// older than the record). When it is not Member, someone else holds a
	// credential for this member: it never approves or applies the issuer's
	// change requests.
	Issuer string
}

// ID is the member id, used as the audit actor id.
func (p *Principal) ID() string {
	if p == nil || p.Member == nil {
		return ""
	}
	return p.Member.GetId()
}

// Name is the member's email (or name), used as the audit actor name.
func (p *Principal) Name() string {
	if p == nil || p.Member == nil {
		return ""
	}
	if e := p.Member.GetEmail(); e != "" {
		return e
	}
	return p.Member.GetName()
}

type principalKey struct{}
type requestIDKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of ctx, or nil when unauthenticated.
func PrincipalFrom(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id of ctx ("" when none).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// GetBindings returns p's role bindings (nil for a nil principal).
func (p *Principal) GetBindings() []*adminv1.RoleBinding {
	if p == nil {
		return nil
	}
	return p.Bindings
}
