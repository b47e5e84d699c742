import { useEffect, useRef } from "react";
import { btn, card } from "../../../components/ui";
import { queryClient } from "../../../lib/query-client";
import { clearToken, getMethod, getOrg } from "../../../lib/session";
import { SsoForm, TokenForm, useOidcConfig } from "./SignIn";

// Reauth asks to sign in again when the API stopped accepting the session's
// credential (an expired ID token, a revoked API token). It opens over the page,
// which stays as it was, unsaved edits included: once signed in, the page's data
// is refreshed and the edit can be saved again.
export function Reauth() {
  const ref = useRef<HTMLDialogElement>(null);
  const { cfg, error } = useOidcConfig();
  const oidc = getMethod() === "oidc";
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  const done = () => void queryClient.invalidateQueries();
  return (
    <dialog
      ref={ref}
      aria-labelledby="reauth-title"
      aria-describedby="reauth-help"
      className={`${card} m-auto w-[min(28rem,calc(100vw-2rem))] backdrop:bg-slate-900/60`}
      onCancel={(e) => e.preventDefault()}
    >
      <h2 id="reauth-title" className="mb-2 text-lg font-bold">
        Your session has expired
      </h2>
      <p id="reauth-help" className="mb-4 text-sm">
        Sign in again to continue: this page and your unsaved changes stay as they are.
      </p>
      {error ? <p role="alert">{(error as Error).message}</p> : null}
      {oidc && cfg ? <SsoForm cfg={cfg} fixedOrg={getOrg()} onSignedIn={done} /> : !oidc ? <TokenForm onSignedIn={done} /> : <p aria-busy="true">Loading…</p>}
      <button type="button" className={`${btn} mt-4`} onClick={() => clearToken()}>
        Sign out instead
      </button>
    </dialog>
  );
}
