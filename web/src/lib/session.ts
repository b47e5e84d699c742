// The API token lives in sessionStorage only: closing the tab signs out.
const KEY = "flagforge.token";

export function getToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setToken(token: string): void {
  sessionStorage.setItem(KEY, token);
  window.dispatchEvent(new Event("flagforge:session"));
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
  window.dispatchEvent(new Event("flagforge:session"));
}
