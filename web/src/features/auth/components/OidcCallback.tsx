import { useEffect, useState } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { handleCallback } from "../../../lib/oidc";
import { navigate } from "../../../lib/router";
import { setToken } from "../../../lib/session";
import { checkOidcMember } from "./SignIn";

// OidcCallback is /auth/callback, where the identity provider sends the browser
// back with the code: in the sign-in pop-up it hands the code over and closes;
// after a redirect sign-in it finishes here and returns to the page it left.
export function OidcCallback() {
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    handleCallback().then(
      async (r) => {
        if (r === "popup") return;
        await checkOidcMember(r.token.idToken, r.org);
        setToken(r.token.idToken, "oidc", r.org);
        navigate(r.returnTo && r.returnTo !== "/auth/callback" ? r.returnTo : "/", { replace: true });
      },
      (err: unknown) => setError(err),
    ).catch((err: unknown) => setError(err));
  }, []);
  return (
    <main className="mx-auto mt-24 max-w-md px-4">
      <h1 className="mb-4 text-xl font-bold">Signing in…</h1>
      <ErrorMessage error={error} />
      {error ? (
        <a className="text-blue-800 underline dark:text-blue-300" href="/">
          Back to sign-in
        </a>
      ) : null}
    </main>
  );
}
