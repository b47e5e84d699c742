import { getToken, markExpired } from "./session";

// FieldViolation is one entry of a google.rpc.BadRequest detail.
export type FieldViolation = { field: string; description: string };

// ApiError is a non-2xx answer of the admin API: the HTTP status, the gRPC
// status message, and the field it names when the server said which.
export class ApiError extends Error {
  readonly status: number;
  readonly field?: string;
  readonly violations: FieldViolation[];
  constructor(status: number, message: string, violations: FieldViolation[]) {
    super(message);
    this.status = status;
    this.violations = violations;
    this.field = violations[0]?.field;
  }
  // stale is true for a write based on an old revision (ABORTED -> 409).
  get stale(): boolean {
    return this.status === 409;
  }
}

type StatusBody = {
  message?: string;
  details?: { "@type"?: string; fieldViolations?: FieldViolation[] }[];
};

// api calls the admin REST API with the session's token. A 401 marks the session
// expired (the app asks to sign in again over the page, keeping its drafts); every
// error is thrown as ApiError.
export async function api<T>(method: string, path: string, body?: unknown, signal?: AbortSignal, asToken?: string): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = asToken ?? getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  const text = await res.text();
  const data: unknown = text ? JSON.parse(text) : {};
  if (!res.ok) {
    const st = data as StatusBody;
    const violations = (st.details ?? []).flatMap((d) => d.fieldViolations ?? []);
    if (res.status === 401 && token && !asToken) markExpired();
    throw new ApiError(res.status, st.message || `${res.status} ${res.statusText}`, violations);
  }
  return data as T;
}

// q builds a query string from the defined, non-empty values.
export function q(params: Record<string, string | number | boolean | undefined>): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== "" && v !== false) s.set(k, String(v));
  }
  const out = s.toString();
  return out ? `?${out}` : "";
}

// enc percent-encodes one path segment.
export const enc = encodeURIComponent;
