import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btnPrimary, card, input, label } from "../../../components/ui";
import { ApiError } from "../../../lib/api";
import { setToken } from "../../../lib/session";
import { listOrgs } from "../api/list-orgs";

// SignIn asks for an API token, checks it against the API, and keeps it in the
// tab's session storage only.
export function SignIn() {
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
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? new Error("The API token was refused: check it and try again.") : err);
    } finally {
      setBusy(false);
    }
  }

  return (
    <main className="mx-auto mt-24 max-w-md px-4">
      <h1 className="mb-6 text-2xl font-bold">Sign in to FlagForge</h1>
      <form onSubmit={submit} className={`${card} flex flex-col gap-3`}>
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
        <button type="submit" className={btnPrimary} disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
