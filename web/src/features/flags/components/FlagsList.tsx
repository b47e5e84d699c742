import { memo, useDeferredValue, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnPrimary, card, input, label } from "../../../components/ui";
import type { FlagEnvironmentConfigJson, FlagJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { ApiError } from "../../../lib/api";
import { Link, navigate, useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useCreateFlag } from "../api/create-flag";
import { useFlagConfigsByEnv } from "../api/list-flag-configs";
import { useFlags } from "../api/list-flags";
import { statusLabel, typeLabel } from "./format";

// parseQuery splits a search into "tag:x owner:y type:z status:s" filters and free text.
function parseQuery(q: string) {
  const f = { text: [] as string[], tag: "", owner: "", type: "", status: "" };
  for (const tok of q.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(tag|owner|type|status):(.*)$/i.exec(tok);
    if (m) f[m[1].toLowerCase() as "tag" | "owner" | "type" | "status"] = m[2].toLowerCase();
    else f.text.push(tok.toLowerCase());
  }
  return f;
}

function matches(flag: FlagJson, f: ReturnType<typeof parseQuery>, statuses: string[]): boolean {
  if (f.tag && !(flag.tags ?? []).some((t) => t.toLowerCase() === f.tag)) return false;
  if (f.owner && !(flag.owner ?? "").toLowerCase().includes(f.owner)) return false;
  if (f.type && typeLabel(flag.type).toLowerCase() !== f.type) return false;
  if (f.status && !statuses.some((s) => s.toLowerCase() === f.status)) return false;
  const hay = `${flag.key} ${flag.name ?? ""} ${flag.description ?? ""} ${(flag.tags ?? []).join(" ")}`.toLowerCase();
  return f.text.every((t) => hay.includes(t));
}

export default function FlagsList({ org, project }: { org: string; project: string }) {
  const [query, setQuery] = useSearchParam("q");
  const [archived, setArchived] = useSearchParam("archived");
  const flags = useFlags(org, project, archived === "1");
  const envs = useEnvironments(org, project);
  const envKeys = useMemo(() => (envs.data?.environments ?? []).map((e) => e.key ?? ""), [envs.data]);
  const configs = useFlagConfigsByEnv(org, project, envKeys);
  const byEnv = useMemo(() => {
    const m = new Map<string, Map<string, FlagEnvironmentConfigJson>>();
    envKeys.forEach((env, i) => {
      const per = new Map<string, FlagEnvironmentConfigJson>();
      for (const c of configs[i]?.data ?? []) per.set(c.flag ?? "", c);
      m.set(env, per);
    });
    return m;
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [envKeys.join(","), ...configs.map((c) => c.dataUpdatedAt)]);
  // Filtering 1,000 rows follows typing without blocking it.
  const deferred = useDeferredValue(query);
  const rows = useMemo(() => {
    const filter = parseQuery(deferred);
    return (flags.data ?? []).filter((f) =>
      matches(f, filter, envKeys.map((e) => statusLabel(byEnv.get(e)?.get(f.key ?? "")?.status))),
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [flags.data, byEnv, deferred]);
  const [creating, setCreating] = useState(false);
  // "/" focuses the search, as in most consoles (not while typing elsewhere).
  const search = useRef<HTMLInputElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== "/" || e.metaKey || e.ctrlKey || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable) return;
      e.preventDefault();
      search.current?.focus();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const error = flags.error ?? envs.error ?? configs.find((c) => c.error)?.error;

  return (
    <section aria-labelledby="flags-title">
      <div className="mb-4 flex flex-wrap items-end gap-3">
        <h1 id="flags-title" className="mr-auto text-2xl font-bold">
          Flags
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Search flags</span>
          <input
            ref={search}
            type="search"
            aria-keyshortcuts="/"
            className={`${input} w-72`}
            placeholder="text, tag:checkout, owner:ana, status:stale"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={archived === "1"} onChange={(e) => setArchived(e.target.checked ? "1" : "")} />
          Show archived
        </label>
        <button type="button" className={btnPrimary} onClick={() => setCreating((v) => !v)} aria-expanded={creating}>
          New flag
        </button>
      </div>
      {creating && <CreateFlag org={org} project={project} onDone={() => setCreating(false)} />}
      <ErrorMessage error={error} />
      <p className="sr-only" aria-live="polite">
        {flags.data ? `${rows.length} of ${flags.data.length} flags shown` : ""}
      </p>
      {flags.isPending ? (
        <p aria-busy="true">Loading flags…</p>
      ) : flags.data?.length === 0 ? (
        <div className={card}>
          <h2 className="font-semibold">No flags yet</h2>
          <ol className="ml-5 list-decimal text-sm">
            <li>Create a flag with “New flag”.</li>
            <li>Turn it on and add rules in each environment.</li>
            <li>Ask for it from your code with an SDK key of the environment.</li>
          </ol>
        </div>
      ) : (
        <div className="overflow-x-auto">
          <table className="w-full border-collapse text-sm">
            <caption className="sr-only">Flags of project {project}, with their state in each environment</caption>
            <thead>
              <tr className="border-b border-slate-400 text-left">
                <th scope="col" className="py-2 pr-3">Flag</th>
                <th scope="col" className="py-2 pr-3">Type</th>
                <th scope="col" className="py-2 pr-3">Tags</th>
                <th scope="col" className="py-2 pr-3">Owner</th>
                {envKeys.map((e) => (
                  <th scope="col" key={e} className="py-2 pr-3">
                    {e}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((f) => (
                <FlagRow key={f.key} org={org} project={project} flag={f} envKeys={envKeys} byEnv={byEnv} />
              ))}
            </tbody>
          </table>
          {rows.length === 0 && <p className="mt-3">No flag matches “{query}”.</p>}
        </div>
      )}
    </section>
  );
}

const FlagRow = memo(function FlagRow({ org, project, flag, envKeys, byEnv }: {
  org: string; project: string; flag: FlagJson; envKeys: string[];
  byEnv: Map<string, Map<string, FlagEnvironmentConfigJson>>;
}) {
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}/flags/${encodeURIComponent(flag.key ?? "")}`;
  return (
    <tr className="border-b border-slate-200 dark:border-slate-800">
      <th scope="row" className="py-2 pr-3 text-left font-normal">
        <Link href={`${base}/${encodeURIComponent(envKeys[0] ?? "production")}`} className="font-mono font-semibold text-blue-800 underline dark:text-blue-300">
          {flag.key}
        </Link>
        {flag.name && flag.name !== flag.key && <div className="text-xs text-slate-700 dark:text-slate-300">{flag.name}</div>}
        {flag.archived && <span className="ml-2 rounded bg-slate-200 px-1 text-xs text-slate-900">archived</span>}
      </th>
      <td className="py-2 pr-3">{typeLabel(flag.type)}</td>
      <td className="py-2 pr-3">{(flag.tags ?? []).join(", ")}</td>
      <td className="py-2 pr-3">{flag.owner}</td>
      {envKeys.map((e) => {
        const c = byEnv.get(e)?.get(flag.key ?? "");
        const on = !!c?.config?.on;
        return (
          <td key={e} className="py-2 pr-3">
            <Link
              href={`${base}/${encodeURIComponent(e)}`}
              aria-label={`${flag.key} in ${e}: ${c ? (on ? "on" : "off") : "unknown"}, ${statusLabel(c?.status)}`}
              className={`inline-block rounded-full px-2 py-0.5 text-xs font-semibold ${on ? "bg-green-800 text-white" : "bg-slate-200 text-slate-900 dark:bg-slate-700 dark:text-slate-100"}`}
            >
              {c ? (on ? "On" : "Off") : "…"} · {statusLabel(c?.status)}
            </Link>
          </td>
        );
      })}
    </tr>
  );
});

function CreateFlag({ org, project, onDone }: { org: string; project: string; onDone: () => void }) {
  const create = useCreateFlag(org, project);
  const [key, setKey] = useState("");
  const [name, setName] = useState("");
  const [tags, setTags] = useState("");
  const [owner, setOwner] = useState("");
  const field = create.error instanceof ApiError ? create.error.field ?? "" : "";
  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await create.mutateAsync({
      key,
      name,
      owner,
      type: "FLAG_TYPE_BOOLEAN",
      tags: tags.split(",").map((t) => t.trim()).filter(Boolean),
    });
    onDone();
    navigate(`/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}/flags/${encodeURIComponent(r.flag?.key ?? key)}/production`);
  }
  return (
    <form onSubmit={(e) => void submit(e).catch(() => {})} className={`${card} mb-4 flex flex-wrap items-end gap-3`} aria-label="New flag">
      <label className="flex flex-col gap-1">
        <span className={label}>Key</span>
        <input className={input} value={key} onChange={(e) => setKey(e.target.value)} required aria-invalid={field.endsWith("key") || undefined} placeholder="new-checkout" />
      </label>
      <label className="flex flex-col gap-1">
        <span className={label}>Name</span>
        <input className={input} value={name} onChange={(e) => setName(e.target.value)} aria-invalid={field.endsWith("name") || undefined} />
      </label>
      <label className="flex flex-col gap-1">
        <span className={label}>Tags (comma separated)</span>
        <input className={input} value={tags} onChange={(e) => setTags(e.target.value)} aria-invalid={field.includes("tags") || undefined} />
      </label>
      <label className="flex flex-col gap-1">
        <span className={label}>Owner</span>
        <input className={input} value={owner} onChange={(e) => setOwner(e.target.value)} aria-invalid={field.endsWith("owner") || undefined} />
      </label>
      <p className="text-sm text-slate-700 dark:text-slate-300">Boolean flag: variants on (true) and off (false).</p>
      <button type="submit" className={btnPrimary} disabled={create.isPending}>
        Create flag
      </button>
      <button type="button" className={btn} onClick={onDone}>
        Cancel
      </button>
      <div className="w-full">
        <ErrorMessage error={create.error} />
      </div>
    </form>
  );
}
