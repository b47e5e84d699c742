// Package testidp is a small but real OpenID Connect provider for tests: discovery,
// a JWKS with a fresh RSA key, an authorization endpoint with a sign-in page
// (authorization code flow, PKCE S256 required), a token endpoint that checks the
// code, client, redirect URI and code verifier (codes are single-use and expire),
// and RS256-signed ID tokens carrying the nonce, email and email_verified. It
// stands for any identity provider; the console's browser tests and the
// oidclogin tests sign in through it. Never use it outside tests: whoever types
// an email is that user.
package testidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Client is a registered client: its id and the exact redirect URIs it may use.
type Client struct {
	ID           string
	RedirectURIs []string
}

// Config configures the provider.
type Config struct {
	// Issuer is the provider's URL (where Handler is served).
	Issuer  string
	Clients []Client
	// TokenTTL is the ID tokens' lifetime (0: one hour).
	TokenTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// IdP is the provider.
type IdP struct {
	cfg    Config
	key    *rsa.PrivateKey
	signer jose.Signer
	mu     sync.Mutex
	codes  map[string]grant
}

type grant struct {
	client, redirect, challenge, nonce, email string
	expires                                   time.Time
}

// New makes a provider with a new signing key.
func New(cfg Config) (*IdP, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	return &IdP{cfg: cfg, key: key, signer: signer, codes: map[string]grant{}}, nil
}

// Subject is the "sub" of the user signing in with email.
func Subject(email string) string { return "user-" + strings.ToLower(email) }

// Handler serves the provider's endpoints.
func (p *IdP) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", p.jwks)
	mux.HandleFunc("GET /authorize", p.authorizePage)
	mux.HandleFunc("POST /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (p *IdP) discovery(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer": p.cfg.Issuer, "authorization_endpoint": p.cfg.Issuer + "/authorize", "token_endpoint": p.cfg.Issuer + "/token",
		"jwks_uri": p.cfg.Issuer + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		"grant_types_supported": []string{"authorization_code"}, "scopes_supported": []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"none"},
	})
}

func (p *IdP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: p.key.Public(), KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
}

// checkAuthRequest validates an authorization request; it returns the error to
// show (never redirected: the redirect URI itself may be the problem).
func (p *IdP) checkAuthRequest(q url.Values) string {
	var client *Client
	for i := range p.cfg.Clients {
		if p.cfg.Clients[i].ID == q.Get("client_id") {
			client = &p.cfg.Clients[i]
		}
	}
	switch {
	case client == nil:
		return "unknown client_id"
	case !contains(client.RedirectURIs, q.Get("redirect_uri")):
		return "redirect_uri is not registered for this client"
	case q.Get("response_type") != "code":
		return "response_type must be code"
	case !contains(strings.Fields(q.Get("scope")), "openid"):
		return "scope must include openid"
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		return "PKCE is required: code_challenge (S256) and code_challenge_method=S256"
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

var page = template.Must(template.New("p").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Test identity provider</title></head>
<body><main><h1>Sign in to the test identity provider</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{else}}<form method="post" action="/authorize">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<label for="email">Email</label> <input id="email" name="email" type="email" required autocomplete="email">
<button type="submit">Continue</button></form>{{end}}</main></body></html>`))

func (p *IdP) authorizePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if msg := p.checkAuthRequest(q); msg != "" {
		w.WriteHeader(http.StatusBadRequest)
		_ = page.Execute(w, map[string]any{"Error": msg})
		return
	}
	params := map[string]string{}
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge", "code_challenge_method"} {
		params[k] = q.Get(k)
	}
	_ = page.Execute(w, map[string]any{"Params": params})
}

func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (p *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	f := r.PostForm
	if msg := p.checkAuthRequest(f); msg != "" {
		http.Error(w, msg, http.StatusBadRequest)
		return
	}
	email := strings.TrimSpace(f.Get("email"))
	if !strings.Contains(email, "@") {
		http.Error(w, "email is required", http.StatusBadRequest)
		return
	}
	code := randomString()
	p.mu.Lock()
	p.codes[code] = grant{client: f.Get("client_id"), redirect: f.Get("redirect_uri"), challenge: f.Get("code_challenge"),
		nonce: f.Get("nonce"), email: email, expires: p.cfg.Now().Add(time.Minute)}
	p.mu.Unlock()
	u, _ := url.Parse(f.Get("redirect_uri")) // checked against the registered URIs
	q := u.Query()
	q.Set("code", code)
	if s := f.Get("state"); s != "" {
		q.Set("state", s)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func oauthError(w http.ResponseWriter, code, desc string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": desc})
}

func (p *IdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "authorization_code" {
		oauthError(w, "unsupported_grant_type", "only authorization_code")
		return
	}
	p.mu.Lock()
	g, ok := p.codes[f.Get("code")]
	delete(p.codes, f.Get("code")) // single use, whatever happens next
	p.mu.Unlock()
	now := p.cfg.Now()
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	switch {
	case !ok || now.After(g.expires):
		oauthError(w, "invalid_grant", "unknown, used or expired code")
		return
	case g.client != f.Get("client_id"):
		oauthError(w, "invalid_grant", "the code was issued to another client")
		return
	case g.redirect != f.Get("redirect_uri"):
		oauthError(w, "invalid_grant", "redirect_uri differs from the authorization request's")
		return
	case subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.challenge)) != 1:
		oauthError(w, "invalid_grant", "code_verifier does not match the code_challenge")
		return
	}
	claims := struct {
		jwt.Claims
		Nonce         string `json:"nonce,omitempty"`
		Email         string `json:"email"`
		EmailVerified bool   `json:"email_verified"`
	}{
		Claims: jwt.Claims{Issuer: p.cfg.Issuer, Subject: Subject(g.email), Audience: jwt.Audience{g.client},
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Second)), Expiry: jwt.NewNumericDate(now.Add(p.cfg.TokenTTL))},
		Nonce: g.nonce, Email: g.email, EmailVerified: true,
	}
	raw, err := jwt.Signed(p.signer).Claims(claims).Serialize()
	if err != nil {
		oauthError(w, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": randomString(), "token_type": "Bearer",
		"expires_in": int(p.cfg.TokenTTL.Seconds()), "id_token": raw})
}
