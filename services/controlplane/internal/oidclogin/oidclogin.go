// Package oidclogin is the control plane's half of the console's OIDC sign-in
// (authorization code flow with PKCE, RFC 7636). The browser makes the code
// verifier, state and nonce, sends the user to the issuer's authorization
// endpoint and gets the code back on its own page; this package then exchanges
// the code (with the verifier) at the issuer's token endpoint and returns the ID
// token, verified exactly as package auth verifies it on every API call.
//
// Why the exchange happens here and not in the browser: the console's Content
// Security Policy allows connections to its own origin only (connect-src 'self'),
// many issuers do not answer cross-origin token requests, and a confidential
// client's secret (OIDC_CLIENT_SECRET, optional) must never reach a browser.
// The endpoint only ever talks to the configured issuer's token endpoint with the
// configured client id; the verifier proves the code was obtained by the browser
// that asks. The console keeps the ID token in the tab's session storage and
// signs in again (in a pop-up, keeping the page and its drafts) when it expires.
//
//	GET  /v1/console/oidc        {"issuer", "clientId", "authorizationEndpoint", "scopes"}; 404 when OIDC is off
//	POST /v1/console/oidc/token  {"code", "codeVerifier", "redirectUri"} -> {"idToken", "expireTime"}
package oidclogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Config is what the login needs: the issuer and client id (package auth's
// OIDC_ISSUER and OIDC_AUDIENCE) and, for a confidential client, its secret.
type Config struct {
	Issuer, ClientID, ClientSecret string
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Handler serves the two endpoints.
type Handler struct {
	cfg      Config
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
	client   *http.Client
	log      *slog.Logger
}

// New fetches the issuer's discovery document (ctx bounds it).
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Handler, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("oidclogin: discovery: %w", err)
	}
	v := p.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now,
		SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256, oidc.PS256, oidc.EdDSA}})
	return &Handler{cfg: cfg, provider: p, verifier: v, client: &http.Client{Timeout: 10 * time.Second}, log: log}, nil
}

// Routes registers the endpoints on mux.
func (h *Handler) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/console/oidc", h.config)
	mux.HandleFunc("POST /v1/console/oidc/token", h.token)
}

// NotConfigured registers the configuration endpoint answering 404 (OIDC off),
// so the console knows to offer API tokens only.
func NotConfigured(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/console/oidc", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"code": 5, "message": "OIDC sign-in is not configured"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers a google.rpc.Status-shaped error (as the rest of the API does),
// naming the field when there is one.
func fail(w http.ResponseWriter, status, code int, field, msg string) {
	body := map[string]any{"code": code, "message": msg}
	if field != "" {
		body["message"] = field + ": " + msg
		body["details"] = []any{map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest",
			"fieldViolations": []any{map[string]string{"field": field, "description": msg}}}}
	}
	writeJSON(w, status, body)
}

func (h *Handler) config(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"issuer": h.cfg.Issuer, "clientId": h.cfg.ClientID,
		"authorizationEndpoint": h.provider.Endpoint().AuthURL, "scopes": "openid email profile",
	})
}

type tokenRequest struct {
	Code         string `json:"code"`
	CodeVerifier string `json:"codeVerifier"`
	RedirectURI  string `json:"redirectUri"`
}

// token exchanges a code for a verified ID token.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	var req tokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 16<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fail(w, http.StatusBadRequest, 3, "", "the body must be a JSON object with code, codeVerifier and redirectUri: "+err.Error())
		return
	}
	// RFC 7636: the verifier is 43 to 128 characters of [A-Za-z0-9-._~].
	u, uerr := url.Parse(req.RedirectURI)
	switch {
	case req.Code == "" || len(req.Code) > 4096:
		fail(w, http.StatusBadRequest, 3, "code", "is required (at most 4096 characters)")
		return
	case len(req.CodeVerifier) < 43 || len(req.CodeVerifier) > 128 || strings.Trim(req.CodeVerifier, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~") != "":
		fail(w, http.StatusBadRequest, 3, "codeVerifier", "must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636)")
		return
	case uerr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		fail(w, http.StatusBadRequest, 3, "redirectUri", "must be the absolute http(s) URL the code was sent to")
		return
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {req.Code}, "redirect_uri": {req.RedirectURI},
		"client_id": {h.cfg.ClientID}, "code_verifier": {req.CodeVerifier}}
	if h.cfg.ClientSecret != "" {
		form.Set("client_secret", h.cfg.ClientSecret)
	}
	hr, err := http.NewRequestWithContext(r.Context(), http.MethodPost, h.provider.Endpoint().TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		fail(w, http.StatusInternalServerError, 13, "", "internal error")
		return
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(hr)
	if err != nil {
		h.log.WarnContext(r.Context(), "OIDC token endpoint unreachable", slog.Any("error", err))
		fail(w, http.StatusServiceUnavailable, 14, "", "the identity provider's token endpoint is unreachable")
		return
	}
	defer func() { _ = resp.Body.Close() }()
	var tr struct {
		IDToken          string `json:"id_token"`
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(b, &tr); err != nil || resp.StatusCode != http.StatusOK || tr.IDToken == "" {
		msg := "the identity provider refused the code"
		if tr.Error != "" {
			msg += ": " + tr.Error
			if tr.ErrorDescription != "" {
				msg += " (" + tr.ErrorDescription + ")"
			}
		} else {
			msg += fmt.Sprintf(" (HTTP %d)", resp.StatusCode)
		}
		fail(w, http.StatusUnauthorized, 16, "", msg)
		return
	}
	tok, err := h.verifier.Verify(r.Context(), tr.IDToken)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			fail(w, http.StatusUnauthorized, 16, "", "the identity provider returned an expired ID token")
			return
		}
		fail(w, http.StatusUnauthorized, 16, "", "the identity provider's ID token does not verify: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"idToken": tr.IDToken, "expireTime": tok.Expiry.UTC().Format(time.RFC3339)})
}
