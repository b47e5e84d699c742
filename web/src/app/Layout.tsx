import type { ReactNode } from "react";
import { btn } from "../components/ui";
import { permissionsOptions, roleName } from "../features/permissions/api/permissions";
import { useProjects } from "../features/projects/api/list-projects";
import { useQuery } from "@tanstack/react-query";
import { useLiveChanges } from "../lib/live";
import { Link, navigate, useLocation } from "../lib/router";
import { clearToken } from "../lib/session";

// Layout is the frame of every signed-in page: project picker, navigation, sign out.
export function Layout({ org, project, children }: { org: string; project: string; children: ReactNode }) {
  const projects = useProjects(org);
  const loc = useLocation();
  const live = useLiveChanges(org);
  const me = useQuery(permissionsOptions(org, project));
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  const nav = [
    { to: `${base}/flags`, label: "Flags" },
    { to: `${base}/segments`, label: "Segments" },
    { to: `${base}/changes`, label: "Change requests" },
    { to: `${base}/schedules`, label: "Schedules" },
    { to: `${base}/rollback`, label: "Rollback" },
    { to: `${base}/playground`, label: "Playground" },
    { to: `${base}/contexts`, label: "Seen contexts" },
    { to: `${base}/audit`, label: "Audit log" },
    { to: `${base}/keys`, label: "SDK keys" },
    { to: `${base}/webhooks`, label: "Webhooks" },
    { to: `${base}/settings`, label: "Settings" },
  ];
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:bg-white focus:p-2">
        Skip to content
      </a>
      <header className="border-b border-slate-300 bg-slate-50 dark:border-slate-700 dark:bg-slate-900">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-4 px-4 py-2">
          <span className="text-lg font-bold">FlagForge</span>
          <label className="flex items-center gap-2 text-sm">
            <span>Project</span>
            <select
              className="rounded border border-slate-500 bg-white px-2 py-1 text-sm dark:bg-slate-800"
              value={project}
              onChange={(e) => navigate(`/o/${encodeURIComponent(org)}/p/${encodeURIComponent(e.target.value)}/flags`)}
            >
              {(projects.data?.projects ?? [{ key: project }]).map((p) => (
                <option key={p.key} value={p.key}>
                  {p.name ? `${p.name} (${p.key})` : p.key}
                </option>
              ))}
            </select>
          </label>
          <nav aria-label="Main" className="flex flex-wrap gap-1">
            {nav.map((n) => {
              const current = loc.pathname.startsWith(n.to);
              return (
                <Link
                  key={n.to}
                  href={n.to}
                  aria-current={current ? "page" : undefined}
                  className={`rounded px-3 py-1.5 text-sm font-medium ${current ? "bg-blue-700 text-white" : "text-slate-900 hover:bg-slate-200 dark:text-slate-100 dark:hover:bg-slate-800"}`}
                >
                  {n.label}
                </Link>
              );
            })}
          </nav>
          <span className="ml-auto text-sm text-slate-700 dark:text-slate-300" data-testid="whoami">
            {me.data ? `${me.data.email || "signed in"} · ${roleName(me.data.role)} in ${project} · ` : ""}org {org}
          </span>
          <button type="button" className={btn} onClick={() => clearToken()}>
            Sign out
          </button>
        </div>
      </header>
      <p role="status" aria-live="polite" className="mx-auto max-w-7xl px-4 pt-2 text-xs text-slate-700 dark:text-slate-300" data-testid="live-change">
        {live ? `Live: ${live.actorName || live.actorId} — ${live.action} ${live.resource} just now` : ""}
      </p>
      <main id="main" className="mx-auto max-w-7xl px-4 py-6">
        {children}
      </main>
    </div>
  );
}
