import { useEffect, useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnPrimary, card, input, label } from "../../../components/ui";
import { ApiError, api, enc } from "../../../lib/api";
import { getOidcConfig, signInWithPopup, type OidcConfig } from "../../../lib/oidc";
import { setToken } from "../../../lib/session";
import { listOrgs } from "../api/list-orgs";

const LAST_ORG = "flagforge.lastOrg";

// orgFromPath reads the organization of a permalink (/o/{org}/...).
const orgFromPath = () => decodeURIComponent(window.location.pathname.match(/^\/o\/([^/]+)/)?.[1] ?? "");

// checkOidcMember checks an ID token against the organization before keeping it.
export async function checkOidcMember(idToken: string, org: string): Promise<void> {
  try {
    await api("GET", `/v1/orgs/${enc(org)}`, undefined, undefined, idToken);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) throw new Error(`You signed in, but you are not a member of the organization “${org}”.`);
    throw err;
  }
}

// useOidcConfig loads the control plane's OIDC configuration (null: off).
export function useOidcConfig(): { cfg: OidcConfig | null; error: unknown } {
  const [state, setState] = useState<{ cfg: OidcConfig | null; error: unknown }>({ cfg: null, error: null });
  useEffect(() => {
    getOidcConfig().then(
      (cfg) => setState({ cfg, error: null }),
      (error: unknown) => setState({ cfg: null, error }),
    );
  }, []);
  return state;
}

// SsoForm signs in with the organization's identity provider (OIDC code + PKCE).
export function SsoForm({ cfg, onSignedIn, fixedOrg }: { cfg: OidcConfig; onSignedIn?: () => void; fixedOrg?: string }) {
  const [org, setOrg] = useState(fixedOrg || orgFromPath() || localStorage.getItem(LAST_ORG) || "");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const t = await signInWithPopup(cfg, org.trim());
      await checkOidcMember(t.idToken, org.trim());
      localStorage.setItem(LAST_ORG, org.trim());
      setToken(t.idToken, "oidc", org.trim());
      onSignedIn?.();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-3" aria-label="Single sign-on">
      {!fixedOrg && (
        <>
          <label htmlFor="sso-org" className={label}>
            Organization
          </label>
          <input id="sso-org" className={input} required value={org} onChange={(e) => setOrg(e.target.value)} autoComplete="organization" />
        </>
      )}
      <ErrorMessage error={error} />
      <button type="submit" className={btnPrimary} disabled={busy || !org.trim()}>
        {busy ? "Waiting for the identity provider…" : "Sign in with single sign-on"}
      </button>
      <p className="text-xs text-slate-700 dark:text-slate-300">Opens {new URL(cfg.issuer).host} in a window; the session ends when you close this tab.</p>
    </form>
  );
}

// TokenForm checks a pasted API token against the API and keeps it.
export function TokenForm({ onSignedIn }: { onSignedIn?: () => void }) {
  const [token, setValue] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  async function submit(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      // Check the token before keeping it, so a refusal is shown here.
      await listOrgs(token.trim());
      setToken(token.trim());
      onSignedIn?.();
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new Error("The API token was refused: check it and try again.") : err);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form onSubmit={(e) => void submit(e)} className="flex flex-col gap-3">
      <label htmlFor="token" className={label}>
        API token
      </label>
      <input
        id="token"
        type="password"
        autoComplete="off"
        required
        value={token}
        onChange={(e) => setValue(e.target.value)}
        aria-describedby="token-help"
        aria-invalid={error ? true : undefined}
        className={input}
      />
      <p id="token-help" className="text-xs text-slate-700 dark:text-slate-300">
        Paste an API token (ffat_…). It is kept for this browser tab only and forgotten when you close it.
      </p>
      <ErrorMessage error={error} />
      <button type="submit" className={btn} disabled={busy || !token.trim()}>
        {busy ? "Signing in…" : "Sign in"}
      </button>
    </form>
  );
}

// SignIn offers single sign-on when the control plane has an OIDC issuer, and
// always a pasted API token.
export function SignIn() {
  const { cfg, error } = useOidcConfig();
  return (
    <main className="mx-auto mt-24 max-w-md px-4">
      <h1 className="mb-6 text-2xl font-bold">Sign in to FlagForge</h1>
      <div className={`${card} flex flex-col gap-6`}>
        <ErrorMessage error={error} />
        {cfg && <SsoForm cfg={cfg} />}
        {cfg && <p className="text-center text-sm">or</p>}
        <TokenForm />
      </div>
    </main>
  );
}
