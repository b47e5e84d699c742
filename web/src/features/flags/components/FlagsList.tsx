import { memo, useCallback, useDeferredValue, useEffect, useLayoutEffect, useMemo, useRef, useState, type FormEvent, type UIEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { FlagEnvironmentStatesJson, FlagJson, FlagSortJson, FlagStatusJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import type { FlagTypeJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { ApiError } from "../../../lib/api";
import { Link, navigate, useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useCreateFlag } from "../api/create-flag";
import { useBulkFlags, type BulkAction, type BulkOutcome } from "../api/bulk-flags";
import { useProjectUsage } from "../api/get-project-usage";
import { useSearchFlags, type FlagSearch } from "../api/search-flags";
import type { FlagUsageSeriesJson } from "../../../gen/flagforge/admin/v1/usage_pb";
import { statusLabel, typeLabel } from "./format";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

const statuses: Record<string, FlagStatusJson> = {
  active: "FLAG_STATUS_ACTIVE",
  inactive: "FLAG_STATUS_INACTIVE",
  stale: "FLAG_STATUS_STALE",
  archived: "FLAG_STATUS_ARCHIVED",
  new: "FLAG_STATUS_NEW",
};
const types: Record<string, FlagTypeJson> = {
  boolean: "FLAG_TYPE_BOOLEAN",
  string: "FLAG_TYPE_STRING",
  number: "FLAG_TYPE_NUMBER",
  json: "FLAG_TYPE_JSON",
};
const sorts: Record<string, { sort: FlagSortJson; label: string }> = {
  key: { sort: "FLAG_SORT_KEY", label: "Key" },
  name: { sort: "FLAG_SORT_NAME", label: "Name" },
  created: { sort: "FLAG_SORT_CREATE_TIME", label: "Created" },
  updated: { sort: "FLAG_SORT_UPDATE_TIME", label: "Last change" },
};

// parseQuery turns the search box ("tag:checkout owner:ana type:boolean
// status:stale dark") into the server's filters; a filter it cannot read is a
// problem shown under the box rather than a silently empty list.
function parseQuery(q: string): { search: FlagSearch; problem: string } {
  const search: FlagSearch = {};
  const text: string[] = [];
  let problem = "";
  for (const tok of q.trim().split(/\s+/).filter(Boolean)) {
    const m = /^(tag|owner|type|status):(.*)$/i.exec(tok);
    if (!m) {
      text.push(tok);
      continue;
    }
    const v = m[2].toLowerCase();
    switch (m[1].toLowerCase()) {
      case "tag":
        search.tags = [...(search.tags ?? []), v];
        break;
      case "owner":
        search.owner = m[2];
        break;
      case "type":
        if (types[v]) search.type = types[v];
        else problem = `Unknown type “${m[2]}”: boolean, string, number or json.`;
        break;
      case "status":
        if (statuses[v]) search.status = statuses[v];
        else problem = `Unknown status “${m[2]}”: active, inactive, stale, archived or new.`;
        break;
    }
  }
  if (text.length) search.query = text.join(" ");
  return { search, problem };
}

// Rows are a fixed height so that only those in view are rendered (a project
// may hold thousands of flags).
const ROW = 52;
const OVERSCAN = 10;

export default function FlagsList({ org, project }: { org: string; project: string }) {
  const [query, setQuery] = useSearchParam("q");
  const [archived, setArchived] = useSearchParam("archived");
  const [status, setStatus] = useSearchParam("status");
  const [envFilter, setEnvFilter] = useSearchParam("env");
  const [onFilter, setOnFilter] = useSearchParam("on");
  const [sort, setSort] = useSearchParam("sort");
  const [desc, setDesc] = useSearchParam("desc");
  const envs = useEnvironments(org, project);
  const envKeys = useMemo(() => (envs.data?.environments ?? []).map((e) => e.key ?? ""), [envs.data]);
  // Typing narrows the list without waiting for each keystroke's answer.
  const deferred = useDeferredValue(query);
  const { search, problem } = useMemo(() => {
    const p = parseQuery(deferred);
    if (statuses[status]) p.search.status = statuses[status];
    if (envFilter) p.search.environment = envFilter;
    if (envFilter && (onFilter === "on" || onFilter === "off")) p.search.on = onFilter === "on";
    if (sorts[sort]) p.search.sort = sorts[sort].sort;
    if (desc === "1") p.search.descending = true;
    if (archived === "1") p.search.includeArchived = true;
    return p;
  }, [deferred, status, envFilter, onFilter, sort, desc, archived]);
  const flags = useSearchFlags(org, project, search);
  // Sparklines: the environment filtered on, else the first one.
  const usageEnv = envFilter || envKeys[0] || "";
  const usage = useProjectUsage(org, project, usageEnv);
  const rows = flags.data?.flags ?? [];
  const [creating, setCreating] = useState(false);
  const canCreate = useCan(org, "flag", "write", project);
  // "/" focuses the search, as in most consoles (not while typing elsewhere).
  const searchBox = useRef<HTMLInputElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const t = e.target as HTMLElement;
      if (e.key !== "/" || e.metaKey || e.ctrlKey || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName) || t.isContentEditable) return;
      e.preventDefault();
      searchBox.current?.focus();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const [range, setRange] = useState({ start: 0, end: 24 });
  const scroller = useRef<HTMLDivElement>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const toggle = useCallback((key: string, on: boolean) => {
    setSelected((cur) => {
      const next = new Set(cur);
      if (on) next.add(key);
      else next.delete(key);
      return next;
    });
  }, []);
  const allSelected = rows.length > 0 && rows.every((f) => selected.has(f.key ?? ""));
  // measure renders the rows in view of the scrolling table, plus a margin.
  const measure = useCallback((el: HTMLElement) => {
    const start = Math.max(0, Math.floor(el.scrollTop / ROW) - OVERSCAN);
    const end = Math.ceil((el.scrollTop + el.clientHeight) / ROW) + OVERSCAN;
    setRange((r) => (r.start === start && r.end === end ? r : { start, end }));
  }, []);
  const onScroll = useCallback((e: UIEvent<HTMLDivElement>) => measure(e.currentTarget), [measure]);
  useLayoutEffect(() => {
    if (scroller.current) measure(scroller.current);
  }, [measure, rows.length]);
  // A new search starts at the top of its list, with nothing selected.
  useEffect(() => {
    scroller.current?.scrollTo({ top: 0 });
    if (scroller.current) measure(scroller.current);
    setSelected(new Set());
  }, [search, measure]);
  const visible = rows.slice(range.start, Math.min(rows.length, range.end));
  const error = flags.error ?? envs.error;
  const filtered = !!(deferred || status || envFilter || archived);

  return (
    <section aria-labelledby="flags-title">
      <div className="mb-4 flex flex-wrap items-end gap-3">
        <h1 id="flags-title" className="mr-auto text-2xl font-bold">
          Flags
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Search flags</span>
          <input
            ref={searchBox}
            type="search"
            aria-keyshortcuts="/"
            aria-invalid={!!problem || undefined}
            aria-describedby={problem ? "flags-search-problem" : undefined}
            className={`${input} w-72`}
            placeholder="text, tag:checkout, owner:ana, status:stale"
            value={query}
            onChange={(e) => setQuery(e.target.value)}
          />
        </label>
        <button type="button" className={btnPrimary} {...deniedProps(canCreate, "new-flag-denied")} onClick={() => setCreating((v) => !v)} aria-expanded={creating}>
          New flag
        </button>
        <Denied can={canCreate} id="new-flag-denied" />
      </div>
      <div className="mb-3 flex flex-wrap items-end gap-3 text-sm">
        <div className="flex flex-col gap-1">
          <label htmlFor="flags-status" className={label}>Status</label>
          <select id="flags-status" className={input} value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">Any status</option>
            {Object.keys(statuses).map((k) => (
              <option key={k} value={k}>
                {statusLabel(statuses[k])}
              </option>
            ))}
          </select>
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor="flags-env" className={label}>In environment</label>
          <select id="flags-env" className={input} value={envFilter} onChange={(e) => setEnvFilter(e.target.value)}>
            <option value="">Any environment</option>
            {envKeys.map((e) => (
              <option key={e} value={e}>
                {e}
              </option>
            ))}
          </select>
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor="flags-on" className={label}>On or off there</label>
          <select id="flags-on" className={input} value={onFilter} disabled={!envFilter} onChange={(e) => setOnFilter(e.target.value)}>
            <option value="">On or off</option>
            <option value="on">On</option>
            <option value="off">Off</option>
          </select>
        </div>
        <div className="flex flex-col gap-1">
          <label htmlFor="flags-sort" className={label}>Sort by</label>
          <select id="flags-sort" className={input} value={sorts[sort] ? sort : "key"} onChange={(e) => setSort(e.target.value === "key" ? "" : e.target.value)}>
            {Object.entries(sorts).map(([k, v]) => (
              <option key={k} value={k}>
                {v.label}
              </option>
            ))}
          </select>
        </div>
        <label className="flex items-center gap-2">
          <input type="checkbox" checked={desc === "1"} onChange={(e) => setDesc(e.target.checked ? "1" : "")} />
          Descending
        </label>
        <label className="flex items-center gap-2">
          <input type="checkbox" checked={archived === "1"} onChange={(e) => setArchived(e.target.checked ? "1" : "")} />
          Show archived
        </label>
      </div>
      {problem && (
        <p id="flags-search-problem" role="alert" className="mb-2 text-sm text-red-800 dark:text-red-300">
          {problem}
        </p>
      )}
      {creating && <CreateFlag org={org} project={project} onDone={() => setCreating(false)} />}
      <BulkBar
        org={org}
        project={project}
        envKeys={envKeys}
        flags={rows.filter((f) => selected.has(f.key ?? ""))}
        states={flags.data?.states ?? new Map()}
        onDone={() => setSelected(new Set())}
      />
      <ErrorMessage error={error} />
      <p className="text-sm" role="status" aria-live="polite" data-testid="flags-count">
        {flags.data ? `${rows.length} ${rows.length === 1 ? "flag" : "flags"}${filtered ? " match" : ""}` : ""}
      </p>
      {flags.isPending ? (
        <p aria-busy="true">Loading flags…</p>
      ) : rows.length === 0 && !filtered ? (
        <div className={card}>
          <h2 className="font-semibold">No flags yet</h2>
          <ol className="ml-5 list-decimal text-sm">
            <li>Create a flag with “New flag”.</li>
            <li>Turn it on and add rules in each environment.</li>
            <li>Ask for it from your code with an SDK key of the environment.</li>
          </ol>
        </div>
      ) : (
        <div
          className="max-h-[70vh] overflow-auto rounded border border-slate-300 dark:border-slate-700"
          ref={scroller}
          onScroll={onScroll}
          tabIndex={0}
          role="region"
          aria-label="Flags table (scrolls)"
        >
          <table className="w-full border-collapse text-sm" aria-rowcount={rows.length + 1}>
            <caption className="sr-only">Flags of project {project}, with their state in each environment</caption>
            <thead className="sticky top-0 z-10 bg-white dark:bg-slate-950">
              <tr className="border-b border-slate-400 text-left" aria-rowindex={1}>
                <th scope="col" className="pl-2">
                  <input
                    type="checkbox"
                    aria-label={`Select all ${rows.length} flags shown`}
                    checked={allSelected}
                    onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((f) => f.key ?? "")) : new Set())}
                  />
                </th>
                <th scope="col" className="px-2 py-2">Flag</th>
                <th scope="col" className="py-2 pr-3">Type</th>
                <th scope="col" className="py-2 pr-3">Tags</th>
                <th scope="col" className="py-2 pr-3">Owner</th>
                {envKeys.map((e) => (
                  <th scope="col" key={e} className="py-2 pr-3">
                    {e}
                  </th>
                ))}
                <th scope="col" className="py-2 pr-3">Evaluations, 7 days ({usageEnv})</th>
                <th scope="col" className="py-2 pr-3">Last change</th>
              </tr>
            </thead>
            <tbody>
              {range.start > 0 && <tr aria-hidden="true" style={{ height: range.start * ROW }} />}
              {visible.map((f, i) => (
                <FlagRow
                  key={f.key}
                  index={range.start + i}
                  org={org}
                  project={project}
                  flag={f}
                  envKeys={envKeys}
                  states={flags.data?.states.get(f.key ?? "")}
                  usage={usage.data?.get(f.key ?? "")}
                  usageEnv={usageEnv}
                  selected={selected.has(f.key ?? "")}
                  onSelect={toggle}
                />
              ))}
              {range.end < rows.length && <tr aria-hidden="true" style={{ height: (rows.length - range.end) * ROW }} />}
            </tbody>
          </table>
          {rows.length === 0 && <p className="m-3">No flag matches “{[query, status, envFilter].filter(Boolean).join(", ")}”.</p>}
        </div>
      )}
    </section>
  );
}

// lastChange is the latest change to the definition or any configuration.
function lastChange(flag: FlagJson, states?: FlagEnvironmentStatesJson): string {
  const times = [flag.updateTime, ...(states?.states ?? []).map((s) => s.updateTime)].filter(Boolean) as string[];
  if (!times.length) return "";
  return times.reduce((a, b) => (a > b ? a : b));
}

// Sparkline draws one flag's daily evaluation counts (bars, scaled to its own
// maximum) with the total in words: colour is never the only signal.
function Sparkline({ flag, env, series }: { flag: string; env: string; series?: FlagUsageSeriesJson }) {
  const counts = (series?.counts ?? []).map(Number);
  const total = Number(series?.total ?? 0);
  const max = Math.max(1, ...counts);
  return (
    <span className="flex items-center gap-2">
      <svg width="56" height="20" viewBox="0 0 56 20" role="img" aria-label={`${flag}: ${total.toLocaleString("en-US")} evaluations in ${env} over 7 days, per day`}>
        {counts.map((n, i) => (
          <rect key={i} x={i * 8} y={20 - Math.max(n > 0 ? 1 : 0, (n / max) * 20)} width="6" height={Math.max(n > 0 ? 1 : 0, (n / max) * 20)} className="fill-blue-700" />
        ))}
      </svg>
      <span className="text-xs tabular-nums">{total ? total.toLocaleString("en-US") : "none"}</span>
    </span>
  );
}

const FlagRow = memo(function FlagRow({ index, org, project, flag, envKeys, states, usage, usageEnv, selected, onSelect }: {
  index: number; org: string; project: string; flag: FlagJson; envKeys: string[]; states?: FlagEnvironmentStatesJson;
  usage?: FlagUsageSeriesJson; usageEnv: string; selected: boolean; onSelect: (key: string, on: boolean) => void;
}) {
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}/flags/${encodeURIComponent(flag.key ?? "")}`;
  const changed = lastChange(flag, states);
  return (
    <tr className="border-b border-slate-200 whitespace-nowrap dark:border-slate-800" style={{ height: ROW }} aria-rowindex={index + 2}>
      <td className="pl-2">
        <input type="checkbox" aria-label={`Select ${flag.key}`} checked={selected} onChange={(e) => onSelect(flag.key ?? "", e.target.checked)} />
      </td>
      <th scope="row" className="px-2 text-left font-normal">
        <Link href={`${base}/${encodeURIComponent(envKeys[0] ?? "production")}`} className="font-mono font-semibold text-blue-800 underline dark:text-blue-300">
          {flag.key}
        </Link>
        {flag.archived && <span className="ml-2 rounded bg-slate-200 px-1 text-xs text-slate-900">archived</span>}
        {flag.name && flag.name !== flag.key && <div className="max-w-64 truncate text-xs text-slate-700 dark:text-slate-300">{flag.name}</div>}
      </th>
      <td className="pr-3">{typeLabel(flag.type)}</td>
      <td className="max-w-48 truncate pr-3">{(flag.tags ?? []).join(", ")}</td>
      <td className="max-w-40 truncate pr-3">{flag.owner}</td>
      {envKeys.map((e) => {
        const st = states?.states?.find((s) => s.environment === e);
        const on = !!st?.on;
        return (
          <td key={e} className="pr-3">
            <Link
              href={`${base}/${encodeURIComponent(e)}`}
              aria-label={`${flag.key} in ${e}: ${st ? (on ? "on" : "off") : "unknown"}, ${statusLabel(st?.status)}`}
              className={`inline-block rounded-full px-2 py-0.5 text-xs font-semibold ${on ? "bg-green-800 text-white" : "bg-slate-200 text-slate-900 dark:bg-slate-700 dark:text-slate-100"}`}
            >
              {st ? (on ? "On" : "Off") : "…"} · {statusLabel(st?.status)}
            </Link>
          </td>
        );
      })}
      <td className="pr-3">
        <Sparkline flag={flag.key ?? ""} env={usageEnv} series={usage} />
      </td>
      <td className="pr-3 text-xs">{changed ? <time dateTime={changed}>{new Date(changed).toLocaleString()}</time> : ""}</td>
    </tr>
  );
});

// BulkBar acts on the selected flags: archive, add a tag, turn off in one
// environment. Each flag is an ordinary write, governed as if made alone; the
// outcome of each is listed (done, change request created, or refused and why).
function BulkBar({ org, project, envKeys, flags, states, onDone }: {
  org: string; project: string; envKeys: string[]; flags: FlagJson[];
  states: Map<string, FlagEnvironmentStatesJson>; onDone: () => void;
}) {
  const bulk = useBulkFlags(org, project);
  const [tag, setTag] = useState("");
  const [env, setEnv] = useState("");
  const canDefine = useCan(org, "flag", "write", project);
  const [comment, setComment] = useState("");
  const [confirmArchive, setConfirmArchive] = useState(false);
  const [outcomes, setOutcomes] = useState<{ what: string; list: BulkOutcome[]; atomic: boolean } | null>(null);
  const n = flags.length;
  const offEnv = env || envKeys[0] || "";
  const canOff = useCan(org, "flag_config", "write", project, offEnv || undefined);
  const run = (action: BulkAction, what: string) => {
    setConfirmArchive(false);
    bulk.mutate({ flags, states, action }, {
      onSuccess: (r) => {
        setOutcomes({ what, list: r.outcomes, atomic: r.atomic });
        onDone();
      },
    });
  };
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  const refused = outcomes?.list.filter((o) => !o.ok) ?? [];
  const crs = outcomes?.list.filter((o) => o.changeRequest) ?? [];
  return (
    <>
      {n > 0 && (
        <div role="region" aria-label="Bulk actions" className={`${card} mb-3 flex flex-wrap items-end gap-3`}>
          <span className="font-semibold">{n} selected</span>
          {confirmArchive ? (
            <button type="button" className={btnDanger} disabled={bulk.isPending} onClick={() => run({ kind: "archive" }, `Archive ${n} flags`)}>
              Confirm: archive {n} flags
            </button>
          ) : (
            <button type="button" className={btn} {...deniedProps(canDefine, "bulk-define-denied")} disabled={!canDefine.allowed || bulk.isPending} onClick={() => setConfirmArchive(true)}>
              Archive…
            </button>
          )}
          <label className="flex flex-col gap-1">
            <span className={label}>Tag to add</span>
            <input className={`${input} w-36`} value={tag} onChange={(e) => setTag(e.target.value.trim().toLowerCase())} placeholder="checkout" />
          </label>
          <button type="button" className={btn} {...deniedProps(canDefine, "bulk-define-denied")} disabled={!canDefine.allowed || !tag || bulk.isPending} onClick={() => run({ kind: "tag", tag }, `Tag ${n} flags ${tag}`)}>
            Add tag
          </button>
          <div className="flex flex-col gap-1">
          <label htmlFor="bulk-off-env" className={label}>Turn off in</label>
          <select id="bulk-off-env" className={input} value={offEnv} onChange={(e) => setEnv(e.target.value)}>
              {envKeys.map((e) => (
                <option key={e} value={e}>
                  {e}
                </option>
              ))}
            </select>
          </div>
          <label className="flex flex-col gap-1">
            <span className={label}>Reason (audit, change requests)</span>
            <input className={`${input} w-56`} value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
          <button type="button" className={btn} {...deniedProps(canOff, "bulk-off-denied")} disabled={!canOff.allowed || !offEnv || bulk.isPending} onClick={() => run({ kind: "off", env: offEnv, comment }, `Turn ${n} flags off in ${offEnv}`)}>
            Turn off
          </button>
          {bulk.isPending && <span aria-busy="true">Working…</span>}
          <Denied can={canDefine} id="bulk-define-denied" />
          <Denied can={canOff} id="bulk-off-denied" />
        </div>
      )}
      <div role="status" aria-live="polite" className="mb-2 text-sm">
        {outcomes && (
          <div className={card}>
            <p className="font-semibold">
              {outcomes.what}: {outcomes.list.length - refused.length - crs.length} done
              {crs.length ? `, ${crs.length} change request${crs.length > 1 ? "s" : ""} created` : ""}
              {refused.length ? `, ${refused.length} refused` : ""}.
              {outcomes.atomic ? (refused.length ? " One bulk write, refused as a whole: nothing changed." : " One bulk write (one transaction).") : ""}
            </p>
            <ul className="ml-5 list-disc">
              {crs.map((o) => (
                <li key={o.flag}>
                  {o.flag}: {o.message} —{" "}
                  <Link
                    className="text-blue-800 underline dark:text-blue-300"
                    href={`${base}/changes/${encodeURIComponent(o.changeRequest?.environment ?? "")}/${encodeURIComponent(o.changeRequest?.id ?? "")}`}
                  >
                    review
                  </Link>
                </li>
              ))}
              {refused.map((o) => (
                <li key={o.flag} className="text-red-800 dark:text-red-300">
                  {o.flag}: refused — {o.message}
                </li>
              ))}
            </ul>
            <button type="button" className={`${btn} mt-2`} onClick={() => setOutcomes(null)}>
              Dismiss
            </button>
          </div>
        )}
      </div>
    </>
  );
}

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
