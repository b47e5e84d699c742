import { useState } from "react";
import { btn } from "./ui";

// Secret shows a secret the server returns only once, with a copy button.
export function Secret({ title, secret, onDone }: { title: string; secret: string; onDone: () => void }) {
  const [copied, setCopied] = useState(false);
  return (
    <div role="region" aria-label={title} className="rounded border-2 border-amber-700 bg-amber-50 p-3 text-amber-950 dark:bg-amber-950 dark:text-amber-50">
      <p className="font-semibold">{title}: copy it now — it is shown only this once.</p>
      <div className="mt-2 flex flex-wrap items-center gap-2">
        <code data-testid="secret" className="break-all rounded bg-white px-2 py-1 text-slate-900">{secret}</code>
        <button type="button" className={btn} onClick={() => void navigator.clipboard?.writeText(secret).then(() => setCopied(true))}>
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" className={btn} onClick={onDone}>
          I have stored it
        </button>
      </div>
    </div>
  );
}
