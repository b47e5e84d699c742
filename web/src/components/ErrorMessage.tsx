import { ApiError } from "../lib/api";

// ErrorMessage shows an API (or any) error where it belongs, announced to screen
// readers; the field the server named is spelled out.
export function ErrorMessage({ error, id }: { error: unknown; id?: string }) {
  if (!error) return null;
  const e = error as Error;
  const field = error instanceof ApiError && error.field ? ` (field: ${error.field})` : "";
  return (
    <p id={id} role="alert" className="rounded border border-red-700 bg-red-50 px-3 py-2 text-sm text-red-900 dark:bg-red-950 dark:text-red-100">
      {e.message}
      {field}
    </p>
  );
}
