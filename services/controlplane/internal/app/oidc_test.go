package app_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// TestOIDCEndToEnd: with an issuer configured, an RS256 ID token from it reaches
// the API as the member mapped to "iss|sub", with that member's roles; a token
// for another audience is 401.
func TestOIDCEndToEnd(t *testing.T) {
	t.Parallel()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	idp := httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": idp.URL, "jwks_uri": idp.URL + "/jwks",
			"authorization_endpoint": idp.URL + "/auth", "token_endpoint": idp.URL + "/token"})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	idToken := func(sub, aud string) string {
		raw, err := jwt.Signed(signer).Claims(jwt.Claims{Issuer: idp.URL, Subject: sub, Audience: jwt.Audience{aud},
			IssuedAt: jwt.NewNumericDate(time.Now()), Expiry: jwt.NewNumericDate(time.Now().Add(time.Hour))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}

	c := startWith(t, backends[0].open(t), ratelimit.Config{}, func(cfg *app.Config) {
		cfg.Auth = auth.Config{OIDCIssuer: idp.URL, OIDCAudience: "flagforge"}
	})
	c.project()
	if _, err := adminv1.NewMemberServiceClient(c.conn).CreateMember(as(c.owner), &adminv1.CreateMemberRequest{Org: "acme",
		Member: &adminv1.Member{Email: "sso@acme.test", OidcSubject: idp.URL + "|user-7"}, Role: adminv1.Role_ROLE_VIEWER}); err != nil {
		t.Fatal(err)
	}
	tok := idToken("user-7", "flagforge")
	c.call("GET", "/v1/orgs/acme/projects/web/flags/new-ui", tok, nil).want(t, 200)
	c.call("POST", "/v1/orgs/acme/projects/web/flags", tok, map[string]any{"flag": map[string]any{"key": "x", "type": "FLAG_TYPE_BOOLEAN"}}).want(t, 403)
	c.call("GET", "/v1/orgs/acme/projects", idToken("user-7", "someone-else"), nil).want(t, 401)
	c.call("GET", "/v1/orgs/acme/projects", idToken("stranger", "flagforge"), nil).want(t, 404)
	c.call("GET", "/v1/orgs/acme/projects", c.owner, nil).want(t, 200) // API tokens keep working
}
