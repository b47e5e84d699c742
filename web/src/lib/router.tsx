import { useCallback, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent } from "react";

// A small history router: the URL is the state (path, filters, tabs), every page
// has a permalink, and links are real <a href> elements.

function subscribe(cb: () => void) {
  window.addEventListener("popstate", cb);
  window.addEventListener("flagforge:navigate", cb);
  return () => {
    window.removeEventListener("popstate", cb);
    window.removeEventListener("flagforge:navigate", cb);
  };
}

const href = () => window.location.pathname + window.location.search;

export function useLocation(): URL {
  const h = useSyncExternalStore(subscribe, href);
  return new URL(h, window.location.origin);
}

export function navigate(to: string, opts: { replace?: boolean } = {}): void {
  if (opts.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event("flagforge:navigate"));
}

// useSearchParam reads one query parameter and returns a setter that replaces it
// in the URL (replaceState: typing in a filter does not flood the history).
export function useSearchParam(name: string): [string, (v: string) => void] {
  const loc = useLocation();
  const value = loc.searchParams.get(name) ?? "";
  const set = useCallback(
    (v: string) => {
      const u = new URL(window.location.href);
      if (v) u.searchParams.set(name, v);
      else u.searchParams.delete(name);
      navigate(u.pathname + u.search, { replace: true });
    },
    [name],
  );
  return [value, set];
}

// match matches a pattern like "/o/:org/p/:project/flags" against a path.
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split("/").filter(Boolean);
  const s = path.split("/").filter(Boolean);
  if (p.length !== s.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) out[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return out;
}

export function Link({ href: to, onClick, ...rest }: AnchorHTMLAttributes<HTMLAnchorElement> & { href: string }) {
  const click = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return <a href={to} onClick={click} {...rest} />;
}
