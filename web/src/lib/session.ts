// The session: the credential (an API token, or an OIDC ID token) lives in
// sessionStorage only, so closing the tab signs out. An OIDC session also keeps
// its organization (ID tokens name none). A credential the API stops accepting
// (401: expired, revoked) marks the session expired: the page stays, with its
// unsaved edits, and the console asks to sign in again on top of it.
const KEY = "flagforge.token";
const METHOD = "flagforge.method";
const ORG = "flagforge.org";

export type Method = "token" | "oidc";

let expired = false;

function changed() {
  window.dispatchEvent(new Event("flagforge:session"));
}

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function getMethod(): Method {
  return sessionStorage.getItem(METHOD) === "oidc" ? "oidc" : "token";
}

// getOrg is the organization of an OIDC session ("" for API tokens).
export function getOrg(): string {
  return sessionStorage.getItem(ORG) ?? "";
}

export function setToken(token: string, method: Method = "token", org = ""): void {
  sessionStorage.setItem(KEY, token);
  sessionStorage.setItem(METHOD, method);
  if (org) sessionStorage.setItem(ORG, org);
  else sessionStorage.removeItem(ORG);
  expired = false;
  changed();
}

// clearToken signs out: the credential and any unsaved drafts kept in the tab
// (flag targeting edits, "flagforge:draft:…") are forgotten.
export function clearToken(): void {
  for (const k of Object.keys(sessionStorage)) if (k.startsWith("flagforge:draft:")) sessionStorage.removeItem(k);
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(METHOD);
  sessionStorage.removeItem(ORG);
  expired = false;
  changed();
}

// markExpired records that the API refused the session's credential.
export function markExpired(): void {
  if (!expired && getToken()) {
    expired = true;
    changed();
  }
}

export function isExpired(): boolean {
  return expired;
}
