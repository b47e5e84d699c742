package app_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/oidclogin/testidp"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
)

// TestConsoleOIDCSignIn: the console's sign-in with a real OIDC provider
// (package testidp): the authorization request with a PKCE challenge, the code
// exchanged by the control plane with the verifier, and the ID token it returns
// accepted by the API as the member with that email. A wrong verifier, a reused
// code and bad input are refused; without OIDC the configuration answers 404.
func TestConsoleOIDCSignIn(t *testing.T) {
	t.Parallel()
	const redirect = "http://console.test/auth/callback"
	var idp *testidp.IdP
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { idp.Handler().ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	var err error
	if idp, err = testidp.New(testidp.Config{Issuer: srv.URL, Clients: []testidp.Client{{ID: "flagforge", RedirectURIs: []string{redirect}}}}); err != nil {
		t.Fatal(err)
	}
	c := startWith(t, backends[0].open(t), ratelimit.Config{}, func(cfg *app.Config) {
		cfg.Auth = auth.Config{OIDCIssuer: srv.URL, OIDCAudience: "flagforge"}
	})
	c.project()
	c.member(c.owner, "acme", "sso@acme.test", adminv1.Role_ROLE_VIEWER, nil)

	cfg := c.call("GET", "/v1/console/oidc", "", nil).want(t, 200)
	if cfg.get("clientId") != "flagforge" || cfg.get("authorizationEndpoint") != srv.URL+"/authorize" {
		t.Fatalf("config: %s", cfg.raw)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// authorize signs in at the provider as email and returns the code and verifier.
	authorize := func(email string) (code, verifier string) {
		t.Helper()
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		verifier = base64.RawURLEncoding.EncodeToString(b)
		sum := sha256.Sum256([]byte(verifier))
		form := url.Values{"client_id": {"flagforge"}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid email"},
			"state": {"s1"}, "nonce": {"n1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}, "email": {email}}
		page, err := http.Get(cfg.get("authorizationEndpoint").(string) + "?" + form.Encode())
		if err != nil || page.StatusCode != 200 {
			t.Fatalf("sign-in page: %v %v", page, err)
		}
		_ = page.Body.Close()
		r, err := noRedirect.PostForm(srv.URL+"/authorize", form)
		if err != nil || r.StatusCode != http.StatusFound {
			t.Fatalf("authorize: %v %v", r, err)
		}
		_ = r.Body.Close()
		u, _ := url.Parse(r.Header.Get("Location"))
		if u.Query().Get("state") != "s1" || !strings.HasPrefix(u.String(), redirect) {
			t.Fatalf("redirect: %s", u)
		}
		return u.Query().Get("code"), verifier
	}

	code, verifier := authorize("sso@acme.test")
	tok := c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": code, "codeVerifier": verifier, "redirectUri": redirect}).want(t, 200)
	id, _ := tok.get("idToken").(string)
	if id == "" || tok.get("expireTime") == nil {
		t.Fatalf("token: %s", tok.raw)
	}
	me := c.call("GET", "/v1/orgs/acme/me/permissions", id, nil).want(t, 200)
	if me.get("method") != "oidc" || me.get("email") != "sso@acme.test" || me.get("role") != "ROLE_VIEWER" {
		t.Fatalf("the ID token acts as the member: %s", me.raw)
	}
	// A code is single-use.
	if r := c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": code, "codeVerifier": verifier, "redirectUri": redirect}).want(t, 401); !strings.Contains(r.raw, "invalid_grant") {
		t.Fatalf("reused code: %s", r.raw)
	}
	// The verifier must match the challenge.
	code, _ = authorize("sso@acme.test")
	wrong := strings.Repeat("a", 43)
	if r := c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": code, "codeVerifier": wrong, "redirectUri": redirect}).want(t, 401); !strings.Contains(r.raw, "code_verifier") {
		t.Fatalf("wrong verifier: %s", r.raw)
	}
	// Bad input names the field.
	if r := c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": "x", "codeVerifier": "short", "redirectUri": redirect}).want(t, 400); r.fieldViolation() != "codeVerifier" {
		t.Fatalf("short verifier: %s", r.raw)
	}
	if r := c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": "x", "codeVerifier": wrong, "redirectUri": "/relative"}).want(t, 400); r.fieldViolation() != "redirectUri" {
		t.Fatalf("relative redirect: %s", r.raw)
	}
	c.call("POST", "/v1/console/oidc/token", "", `{"code": "x", "extra": 1}`).want(t, 400)
	// A stranger signs in at the provider but is no member: not found.
	code, verifier = authorize("stranger@else.test")
	id = c.call("POST", "/v1/console/oidc/token", "", map[string]any{"code": code, "codeVerifier": verifier, "redirectUri": redirect}).want(t, 200).get("idToken").(string)
	c.call("GET", "/v1/orgs/acme", id, nil).want(t, 404)

	// Without OIDC: the console offers API tokens only.
	plain := start(t, ratelimit.Config{})
	plain.call("GET", "/v1/console/oidc", "", nil).want(t, 404)
}
