import { ApiError, api } from "./api";

// The console's OIDC sign-in: authorization code flow with PKCE (RFC 7636).
// This tab makes the code verifier, state and nonce and opens the issuer's
// authorization page in a pop-up (so the page below, with any unsaved edit,
// stays); the pop-up comes back to /auth/callback on this origin, which hands
// the code to this tab (postMessage, same origin only) and closes. The control
// plane exchanges the code with the verifier at the issuer's token endpoint
// (POST /v1/console/oidc/token) and returns the verified ID token; this tab
// checks its nonce. When the pop-up cannot open, the same flow runs as a
// redirect of this tab (the pending state then waits in sessionStorage).

export type OidcConfig = { issuer: string; clientId: string; authorizationEndpoint: string; scopes: string };
export type OidcToken = { idToken: string; expireTime: string };

const PENDING = "flagforge.oidc.pending";
const CALLBACK = "/auth/callback";

// getOidcConfig is null when the control plane has no OIDC issuer (404).
export async function getOidcConfig(): Promise<OidcConfig | null> {
  try {
    return await api<OidcConfig>("GET", "/v1/console/oidc", undefined, undefined, "");
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const random = (n: number) => b64url(crypto.getRandomValues(new Uint8Array(n)));

type Pending = { state: string; nonce: string; verifier: string; redirectUri: string; org: string; returnTo: string };

async function start(cfg: OidcConfig, org: string): Promise<{ url: string; pending: Pending }> {
  const verifier = random(32); // 43 characters
  const challenge = b64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  const pending: Pending = {
    state: random(16),
    nonce: random(16),
    verifier,
    redirectUri: window.location.origin + CALLBACK,
    org,
    returnTo: window.location.pathname + window.location.search,
  };
  const u = new URL(cfg.authorizationEndpoint);
  u.searchParams.set("response_type", "code");
  u.searchParams.set("client_id", cfg.clientId);
  u.searchParams.set("redirect_uri", pending.redirectUri);
  u.searchParams.set("scope", cfg.scopes || "openid email profile");
  u.searchParams.set("state", pending.state);
  u.searchParams.set("nonce", pending.nonce);
  u.searchParams.set("code_challenge", challenge);
  u.searchParams.set("code_challenge_method", "S256");
  return { url: u.toString(), pending };
}

function claims(idToken: string): Record<string, unknown> {
  const part = idToken.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(decodeURIComponent(Array.from(json, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""))) as Record<string, unknown>;
}

async function exchange(p: Pending, code: string): Promise<OidcToken> {
  const t = await api<OidcToken>("POST", "/v1/console/oidc/token", { code, codeVerifier: p.verifier, redirectUri: p.redirectUri }, undefined, "");
  if (claims(t.idToken).nonce !== p.nonce) throw new Error("The identity provider's answer does not match this sign-in (nonce): try again.");
  return t;
}

// signInWithPopup runs the whole flow in a pop-up and resolves with the ID
// token; it falls back to a redirect of this tab when the pop-up is blocked
// (the promise then never resolves: the page is left).
export async function signInWithPopup(cfg: OidcConfig, org: string): Promise<OidcToken> {
  const { url, pending } = await start(cfg, org);
  const popup = window.open(url, "flagforge-sso", "popup,width=520,height=680");
  if (!popup) {
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    window.location.assign(url);
    return new Promise(() => {});
  }
  return new Promise<OidcToken>((resolve, reject) => {
    const timer = window.setInterval(() => {
      if (popup.closed) {
        cleanup();
        reject(new Error("The sign-in window was closed before signing in."));
      }
    }, 500);
    function cleanup() {
      window.clearInterval(timer);
      window.removeEventListener("message", onMessage);
    }
    function onMessage(e: MessageEvent) {
      const m = e.data as { type?: string; code?: string; state?: string; error?: string };
      if (e.origin !== window.location.origin || m?.type !== "flagforge-oidc" || m.state !== pending.state) return;
      cleanup();
      if (m.error || !m.code) reject(new Error(`The identity provider refused the sign-in: ${m.error ?? "no code"}`));
      else exchange(pending, m.code).then(resolve, reject);
    }
    window.addEventListener("message", onMessage);
  });
}

// handleCallback runs on /auth/callback. In a pop-up it hands the code to the
// tab that opened it and closes ("popup"); after a redirect it finishes the
// sign-in here and returns the token, the organization and where to go back.
export async function handleCallback(): Promise<"popup" | { token: OidcToken; org: string; returnTo: string }> {
  const params = new URLSearchParams(window.location.search);
  const code = params.get("code") ?? undefined;
  const state = params.get("state") ?? undefined;
  const error = params.get("error") ? `${params.get("error")}${params.get("error_description") ? `: ${params.get("error_description")}` : ""}` : undefined;
  if (window.opener && window.opener !== window) {
    (window.opener as Window).postMessage({ type: "flagforge-oidc", code, state, error }, window.location.origin);
    window.close();
    return "popup";
  }
  const raw = sessionStorage.getItem(PENDING);
  sessionStorage.removeItem(PENDING);
  const p = raw ? (JSON.parse(raw) as Pending) : null;
  if (!p || p.state !== state) throw new Error("This sign-in was not started here (state mismatch): start again.");
  if (error || !code) throw new Error(`The identity provider refused the sign-in: ${error ?? "no code"}`);
  return { token: await exchange(p, code), org: p.org, returnTo: p.returnTo };
}
