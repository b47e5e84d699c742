package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// tokens is a TokenStore keyed by hash (a unit-test stand-in for the one method).
type tokens map[string]*store.Principal

func (t tokens) Authenticate(_ context.Context, hash []byte, _ time.Time) (*store.Principal, error) {
	if p, ok := t[string(hash)]; ok {
		return p, nil
	}
	return nil, errs.E(errs.Unauthenticated, "unknown token")
}

// members maps "org/subject" and "org/email" to members.
type members map[string]*adminv1.Member

func (m members) MemberByOIDCSubject(_ context.Context, org, subject, email string) (*adminv1.Member, []*adminv1.RoleBinding, error) {
	if mem, ok := m[org+"/"+subject]; ok {
		return mem, nil, nil
	}
	if mem, ok := m[org+"/"+email]; ok && email != "" {
		return mem, nil, nil
	}
	return nil, nil, errs.E(errs.NotFound, "no member")
}

func TestNewSecret(t *testing.T) {
	t.Parallel()
	s, h := NewSecret(APITokenPrefix)
	if !strings.HasPrefix(s, "ffat_") || len(s) != len("ffat_")+43 {
		t.Fatalf("secret %q: want ffat_ + 43 base64url chars", s)
	}
	if string(h) != string(HashSecret(s)) || len(h) != 32 {
		t.Fatal("hash is not the SHA-256 of the secret")
	}
	if s2, _ := NewSecret(APITokenPrefix); s2 == s {
		t.Fatal("two secrets are equal")
	}
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	secret, hash := NewSecret(APITokenPrefix)
	ts := tokens{string(hash): {Org: "acme", Member: &adminv1.Member{Id: "m1"}, TokenID: "t1"}}
	a, err := New(context.Background(), Config{}, ts, members{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.Authenticate(context.Background(), "Bearer "+secret, "other")
	if err != nil || p.Org != "acme" || p.ID() != "m1" || p.TokenID != "t1" {
		t.Fatalf("valid token: %+v, %v", p, err)
	}
	for _, h := range []string{"", "Bearer", "Basic abc", "Bearer ffat_wrong", "Bearer some.jwt.value"} {
		if _, err := a.Authenticate(context.Background(), h, "acme"); errs.KindOf(err) != errs.Unauthenticated {
			t.Errorf("%q: got %v, want Unauthenticated", h, err)
		}
	}
}

// idp is a local OIDC provider: discovery + JWKS over httptest on 127.0.0.1.
type idp struct {
	srv  *httptest.Server
	keys jose.JSONWebKeySet
}

func newIDP(t *testing.T, pub ...jose.JSONWebKey) *idp {
	t.Helper()
	p := &idp{keys: jose.JSONWebKeySet{Keys: pub}}
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.srv.URL,
			"jwks_uri":                              p.srv.URL + "/jwks",
			"authorization_endpoint":                p.srv.URL + "/authorize",
			"token_endpoint":                        p.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(p.keys)
	})
	return p
}

func sign(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, kid string, claims any) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type idClaims struct {
	jwt.Claims
	Email         string `json:"email,omitempty"`
	EmailVerified *bool  `json:"email_verified,omitempty"`
}

func TestOIDC(t *testing.T) {
	t.Parallel()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := newIDP(t,
		jose.JSONWebKey{Key: rsaKey.Public(), KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
		jose.JSONWebKey{Key: ecKey.Public(), KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
	)
	now := time.Now()
	alice := &adminv1.Member{Id: "alice", Email: "alice@acme.test"}
	bob := &adminv1.Member{Id: "bob", Email: "bob@acme.test"}
	ms := members{"acme/" + p.srv.URL + "|alice-sub": alice, "acme/bob@acme.test": bob}
	a, err := New(context.Background(), Config{OIDCIssuer: p.srv.URL, OIDCAudience: "flagforge"}, tokens{}, ms, nil)
	if err != nil {
		t.Fatal(err)
	}
	claims := func(sub, aud string, exp time.Time) idClaims {
		return idClaims{Claims: jwt.Claims{
			Issuer: p.srv.URL, Subject: sub, Audience: jwt.Audience{aud},
			IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)), Expiry: jwt.NewNumericDate(exp),
		}}
	}
	verified, unverified := true, false
	bobClaims := claims("bob-sub", "flagforge", now.Add(time.Hour))
	bobClaims.Email, bobClaims.EmailVerified = "bob@acme.test", &verified
	bobUnverified := bobClaims
	bobUnverified.EmailVerified = &unverified

	tests := []struct {
		name    string
		token   string
		org     string
		want    string
		wantErr errs.Kind
	}{
		{"RS256 token maps to its member by iss|sub", sign(t, rsaKey, jose.RS256, "rsa1", claims("alice-sub", "flagforge", now.Add(time.Hour))), "acme", "alice", 0},
		{"ES256 token maps to its member by iss|sub", sign(t, ecKey, jose.ES256, "ec1", claims("alice-sub", "flagforge", now.Add(time.Hour))), "acme", "alice", 0},
		{"verified email is the fallback", sign(t, rsaKey, jose.RS256, "rsa1", bobClaims), "acme", "bob", 0},
		{"unverified email maps to nobody", sign(t, rsaKey, jose.RS256, "rsa1", bobUnverified), "acme", "", errs.NotFound},
		{"identity of another organization is not found", sign(t, rsaKey, jose.RS256, "rsa1", claims("alice-sub", "flagforge", now.Add(time.Hour))), "globex", "", errs.NotFound},
		{"wrong audience", sign(t, rsaKey, jose.RS256, "rsa1", claims("alice-sub", "someone-else", now.Add(time.Hour))), "acme", "", errs.Unauthenticated},
		{"expired", sign(t, rsaKey, jose.RS256, "rsa1", claims("alice-sub", "flagforge", now.Add(-time.Minute))), "acme", "", errs.Unauthenticated},
		{"unknown key", sign(t, stranger, jose.RS256, "rsa-unknown", claims("alice-sub", "flagforge", now.Add(time.Hour))), "acme", "", errs.Unauthenticated},
		{"known kid, wrong key", sign(t, stranger, jose.RS256, "rsa1", claims("alice-sub", "flagforge", now.Add(time.Hour))), "acme", "", errs.Unauthenticated},
		{"no organization in the request", sign(t, rsaKey, jose.RS256, "rsa1", claims("alice-sub", "flagforge", now.Add(time.Hour))), "", "", errs.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.Authenticate(context.Background(), "Bearer "+tt.token, tt.org)
			if tt.want != "" {
				if err != nil || got.ID() != tt.want || got.Org != tt.org || got.Method != "oidc" {
					t.Fatalf("got %+v, %v; want member %s", got, err, tt.want)
				}
				return
			}
			if errs.KindOf(err) != tt.wantErr {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, c := range []Config{{OIDCAudience: "x"}, {OIDCIssuer: "ftp://x", OIDCAudience: "x"}, {OIDCIssuer: "https://idp"}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	if err := (Config{OIDCIssuer: "https://idp.example", OIDCAudience: "ff"}).Validate(); err != nil {
		t.Error(err)
	}
}
