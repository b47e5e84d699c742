import { useEffect, useState, type ReactNode } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnPrimary, card, input, label } from "../../../components/ui";
import type { FlagConfigJson, TargetJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { ApiError } from "../../../lib/api";
import { Link } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useFlag } from "../api/get-flag";
import { useFlagConfig } from "../api/get-flag-config";
import { useUpdateFlagConfig } from "../api/update-flag-config";
import { useValidateFlagConfig } from "../api/validate-flag-config";
import { createSchedule, useScheduleMutation } from "../../schedules/api/schedules";
import { statusLabel, typeLabel } from "./format";
import { EmergencyOffDialog, KillDialog } from "./KillDialog";
import { ListInput, RuleBuilder } from "./RuleBuilder";
import { Prerequisites } from "./Prerequisites";
import { ServeEditor } from "./ServeEditor";
import { Usage } from "./Usage";
import { clearDraft, readDraft, writeDraft } from "../lib/drafts";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

function Section({ n, title, children }: { n: number; title: string; children: ReactNode }) {
  return (
    <section className={card} aria-labelledby={`sec-${n}`}>
      <h3 id={`sec-${n}`} className="mb-3 text-lg font-semibold">
        {n}. {title}
      </h3>
      {children}
    </section>
  );
}

const clone = (v?: FlagConfigJson): FlagConfigJson => JSON.parse(JSON.stringify(v ?? {})) as FlagConfigJson;

// changedSections counts the top-level parts of the configuration that differ.
function changedSections(a: FlagConfigJson, b: FlagConfigJson): number {
  const keys = ["on", "offVariant", "prerequisites", "targets", "rules", "defaultServe"] as const;
  const norm = (v: unknown) => JSON.stringify(v ?? null) === "[]" ? "null" : JSON.stringify(v ?? null);
  return keys.filter((k) => norm(a[k]) !== norm(b[k])).length;
}

export default function FlagPage({ org, project, flag, env }: { org: string; project: string; flag: string; env: string }) {
  const def = useFlag(org, project, flag);
  const envs = useEnvironments(org, project);
  const cfg = useFlagConfig(org, project, env, flag);
  const save = useUpdateFlagConfig(org, project, env, flag);
  const server = cfg.data?.config;
  const [draft, setDraft] = useState<FlagConfigJson | null>(null);
  // origin is what the draft was based on: the configuration and its revision.
  // Saves send that revision, never a newer one seen since (no silent overwrite).
  const [origin, setOrigin] = useState<{ config: FlagConfigJson; revision: string } | null>(null);
  const [comment, setComment] = useState("");
  const [notice, setNotice] = useState("");
  const [crLink, setCrLink] = useState("");
  const [runAt, setRunAt] = useState("");
  // restored: the draft was read back from session storage (a reload kept it).
  const [restored, setRestored] = useState(false);
  const canWrite = useCan(org, "flag_config", "write", project, env);
  const canKill = useCan(org, "flag_config", "write", project);
  const canSchedule = useCan(org, "schedule", "write", project, env);
  const schedule = useScheduleMutation(org, project, env, (i: Parameters<typeof createSchedule>[3]) => createSchedule(org, project, env, i));
  const startFrom = (c?: FlagConfigJson, revision?: string) => {
    setDraft(clone(c));
    setOrigin({ config: clone(c), revision: revision ?? "0" });
  };
  const dirty = !!(origin && draft && changedSections(origin.config, draft) > 0);
  useEffect(() => {
    if (!server?.config) return;
    if (draft === null) {
      // A draft kept from before a reload comes back with the revision it was
      // based on: if the flag changed since, the conflict is shown as usual.
      const kept = readDraft(org, project, flag, env);
      if (kept) {
        setDraft(kept.draft);
        setOrigin(kept.origin);
        setRestored(true);
        return;
      }
    }
    // First load, or a change made elsewhere while nothing is edited: follow it.
    if (draft === null || (!dirty && origin?.revision !== server.revision)) startFrom(server.config, server.revision);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [server, draft, dirty]);
  // Keep an unsaved edit across reloads; forget it once nothing is unsaved.
  useEffect(() => {
    if (!draft || !origin) return;
    if (dirty) writeDraft(org, project, flag, env, { draft, origin });
    else {
      clearDraft(org, project, flag, env);
      setRestored(false);
    }
  }, [org, project, flag, env, draft, origin, dirty]);
  const movedOn = !!(dirty && server?.revision && origin && server.revision !== origin.revision);
  const variants = (def.data?.flag?.variants ?? []).map((v) => v.key ?? "");
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  const d = draft ?? {};
  // Validation while typing: the server checks the draft as a save would.
  const check = useValidateFlagConfig(org, project, env, flag, dirty ? d : null);
  const problems = dirty ? check.data?.violations ?? [] : [];
  const errField = save.error instanceof ApiError ? save.error.field ?? "" : problems[0]?.field ?? "";
  const changes = origin && draft ? changedSections(origin.config, draft) : 0;
  const upd = (p: Partial<FlagConfigJson>) => setDraft({ ...d, ...p });
  const envInfo = envs.data?.environments?.find((e) => e.key === env);
  const production = env === "production";

  async function submit() {
    setNotice("");
    const r = await save.mutateAsync({ config: d, revision: origin?.revision ?? "0", comment });
    if (r.changeRequest) {
      setNotice(`This environment requires approval: change request ${r.changeRequest.id ?? ""} was created for review.`);
      setCrLink(`${base}/changes/${encodeURIComponent(env)}/${encodeURIComponent(r.changeRequest.id ?? "")}`);
      if (origin) startFrom(origin.config, origin.revision);
    } else {
      setNotice(`Saved: ${flag} in ${env} is at revision ${r.config?.revision ?? "?"}.`);
      startFrom(r.config?.config, r.config?.revision);
    }
    setComment("");
  }
  // reload drops the draft for the latest saved version.
  function reload() {
    save.reset();
    void cfg.refetch().then((r) => startFrom(r.data?.config?.config, r.data?.config?.revision));
  }
  // reapply keeps the draft and bases it on the latest saved version: the next
  // save replaces theirs with it, knowingly.
  function reapply() {
    save.reset();
    void cfg.refetch().then((r) => {
      const c = r.data?.config;
      if (c) setOrigin({ config: clone(c.config), revision: c.revision ?? "0" });
    });
  }
  const targetsOf = (v: string) => (d.targets ?? []).find((t) => t.variant === v)?.values ?? [];
  const setTargets = (v: string, values: string[]) => {
    const others = (d.targets ?? []).filter((t) => t.variant !== v);
    const next: TargetJson[] = values.length ? [...others, { variant: v, values }] : others;
    upd({ targets: variants.flatMap((k) => next.filter((t) => t.variant === k)) });
  };

  if (def.error || cfg.error) return <ErrorMessage error={def.error ?? cfg.error} />;
  if (!def.data || !server || !draft) return <p aria-busy="true">Loading {flag}…</p>;
  const f = def.data.flag!;
  return (
    <div className="flex flex-col gap-4">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="font-mono text-2xl font-bold">{f.key}</h1>
        <button type="button" className={btn} onClick={() => void navigator.clipboard?.writeText(f.key ?? "")}>
          Copy key
        </button>
        <span className="text-sm">
          {typeLabel(f.type)} · variants {variants.join(", ")} · {statusLabel(server.status)}
        </span>
        <span className="ml-auto flex items-center gap-2">
          <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/playground?flag=${encodeURIComponent(flag)}&env=${encodeURIComponent(env)}`}>
            Explain for a context…
          </Link>
          <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/flags/${encodeURIComponent(flag)}/${encodeURIComponent(env)}/history`}>
            History
          </Link>
          <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/audit?resource=${encodeURIComponent(`projects/${project}/`)}&q=${encodeURIComponent(flag)}`}>
            Audit entries
          </Link>
          <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/releases/${encodeURIComponent(flag)}/${encodeURIComponent(env)}`}>
            Release plan
          </Link>
          {server.config?.on && (
            <EmergencyOffDialog
              can={canWrite}
              org={org}
              project={project}
              flag={flag}
              env={env}
              onDone={() => {
                setNotice(`${flag} is off in ${env} (emergency off).`);
                void cfg.refetch().then((r) => startFrom(r.data?.config?.config, r.data?.config?.revision));
              }}
            />
          )}
          <KillDialog can={canKill} org={org} project={project} flag={flag} envCount={envs.data?.environments?.length ?? 0} />
        </span>
      </div>
      {f.name && <p>{f.name}</p>}
      <Usage org={org} project={project} env={env} flag={flag} />
      <nav aria-label="Environments">
        <ul className="flex gap-1 border-b border-slate-300 dark:border-slate-700">
          {(envs.data?.environments ?? []).map((e) => (
            <li key={e.key}>
              <Link
                href={`${base}/flags/${encodeURIComponent(flag)}/${encodeURIComponent(e.key ?? "")}`}
                aria-current={e.key === env ? "page" : undefined}
                className={`block rounded-t px-4 py-2 text-sm font-medium ${e.key === env ? "bg-blue-700 text-white" : "hover:bg-slate-200 dark:hover:bg-slate-800"}`}
              >
                {e.name || e.key}
                {e.settings?.approvalsRequired ? " (approvals)" : ""}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      {production && (
        <p className="rounded border-l-8 border-red-700 bg-red-50 px-3 py-1 text-sm font-semibold text-red-900 dark:bg-red-950 dark:text-red-100">
          Production{envInfo?.settings?.approvalsRequired ? ": changes need approval" : ""}
        </p>
      )}
      {restored && dirty && (
        <div role="status" className="flex flex-wrap items-center gap-2 rounded border border-amber-700 bg-amber-50 px-3 py-2 text-sm text-amber-950 dark:bg-amber-950 dark:text-amber-100">
          Draft restored: your unsaved edit of {flag} in {env} was kept from before the page reloaded (based on revision {origin?.revision}).
          <button type="button" className={btn} onClick={() => { save.reset(); startFrom(server.config, server.revision); }}>
            Discard draft
          </button>
        </div>
      )}
      <Denied can={canWrite} id="flag-write-denied" />
      <h2 className="sr-only">Targeting in {env}, in evaluation order</h2>
      {/* A role that may not write the configuration sees it read-only. */}
      <fieldset disabled={!canWrite.allowed} aria-describedby={canWrite.allowed ? undefined : "flag-write-denied"} className="flex min-w-0 flex-col gap-4">
      <legend className="sr-only">Targeting in {env}</legend>
      <Section n={1} title="On / off">
        <div className="flex flex-wrap items-center gap-4">
          <label className="flex items-center gap-2">
            <input
              type="checkbox"
              role="switch"
              className="h-5 w-5"
              checked={!!d.on}
              aria-invalid={errField.startsWith("config.on") || undefined}
              onChange={(e) => upd({ on: e.target.checked })}
            />
            <span className="font-medium">{`Serve targeting in ${env}`}</span>
            <span className="text-sm">({d.on ? "on" : "off"})</span>
          </label>
          <label className="flex items-center gap-2">
            <span className={label}>When off, serve</span>
            <select className={input} value={d.offVariant ?? ""} aria-invalid={errField.startsWith("config.off_variant") || undefined} onChange={(e) => upd({ offVariant: e.target.value })}>
              <option value="">the caller’s default</option>
              {variants.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          </label>
        </div>
      </Section>
      <Section n={2} title="Prerequisites">
        <Prerequisites org={org} project={project} flag={flag} value={d.prerequisites ?? []} errField={errField} onChange={(prerequisites) => upd({ prerequisites })} />
      </Section>
      <Section n={3} title="Individual targets">
        <p className="mb-2 text-sm">targetingKey values listed here get their variant before any rule. One per line or comma separated.</p>
        <div className="grid gap-3 md:grid-cols-2">
          {variants.map((v) => (
            <div key={v}>
              <ListInput
                label={`Targets served ${v}`}
                multiline
                values={targetsOf(v)}
                invalid={errField.startsWith("config.targets") || undefined}
                onChange={(vs) => setTargets(v, vs)}
              />
              <p className="text-xs">{`Targets served ${v}`}: {targetsOf(v).length}</p>
            </div>
          ))}
        </div>
      </Section>
      <Section n={4} title="Rules">
        <RuleBuilder rules={d.rules ?? []} variants={variants} errField={errField} problems={problems} onChange={(rules) => upd({ rules })} />
      </Section>
      <Section n={5} title="Default">
        <ServeEditor name="Otherwise serve" serve={d.defaultServe} variants={variants} path="config.default_serve" errField={errField} onChange={(s) => upd({ defaultServe: s })} />
      </Section>
      </fieldset>

      <div className="sticky bottom-0 -mx-4 border-t border-slate-400 bg-slate-50 px-4 py-3 dark:bg-slate-900" role="region" aria-label="Save changes">
        <div className="mx-auto flex max-w-7xl flex-wrap items-center gap-3">
          <span className="font-semibold" aria-live="polite">
            {changes ? `${changes} unsaved change${changes > 1 ? "s" : ""}` : "No unsaved changes"}
            {problems.length ? ` · ${problems.length} problem${problems.length > 1 ? "s" : ""} found` : ""}
          </span>
          {problems.length > 0 && (
            <ul aria-label="Problems found while typing" className="w-full text-sm text-red-800 dark:text-red-300">
              {problems.map((p, i) => (
                <li key={i}>
                  <code>{p.field}</code>: {p.description}
                </li>
              ))}
            </ul>
          )}
          <label className="flex items-center gap-2">
            <span className={label}>Comment</span>
            <input className={`${input} w-72`} value={comment} onChange={(e) => setComment(e.target.value)} placeholder="why (recorded in the audit log)" />
          </label>
          <button type="button" className={btnPrimary} {...deniedProps(canWrite, "flag-write-denied")} disabled={!canWrite.allowed || !changes || save.isPending} onClick={() => void submit().catch(() => {})}>
            {save.isPending ? "Saving…" : "Save changes"}
          </button>
          <label className="flex items-center gap-2">
            <span className={label}>Schedule for (your time)</span>
            <input type="datetime-local" step={1} className={input} value={runAt} onChange={(e) => setRunAt(e.target.value)} />
          </label>
          <button
            type="button"
            className={btn}
            {...deniedProps(canSchedule, "schedule-denied")}
            disabled={!canSchedule.allowed || !changes || !runAt || schedule.isPending}
            onClick={() => {
              const runTime = new Date(runAt).toISOString();
              schedule.mutate(
                { flag, config: d, baseRevision: origin?.revision ?? "0", runTime, comment },
                {
                  onSuccess: (r) => {
                    setNotice(`Scheduled for ${runTime.slice(0, 19).replace("T", " ")} UTC${r.scheduledChange?.changeRequestId ? " (needs approval first)" : ""}.`);
                    if (origin) startFrom(origin.config, origin.revision);
                    setRunAt("");
                  },
                },
              );
            }}
          >
            Schedule
          </button>
          <Denied can={canSchedule} id="schedule-denied" />
          <button type="button" className={btn} disabled={!changes} onClick={() => { save.reset(); startFrom(server.config, server.revision); }}>
            Discard
          </button>
          <p role="status" className="text-sm">{notice}</p>
          {crLink && (
            <Link href={crLink} className="text-sm text-blue-800 underline dark:text-blue-300">
              Open the change request
            </Link>
          )}
          {(save.error instanceof ApiError && save.error.stale) || movedOn ? (
            <div role="alert" className="flex flex-wrap items-center gap-2 text-sm text-red-900 dark:text-red-200">
              Someone changed this flag in {env} since you started editing
              {save.error instanceof ApiError && save.error.stale ? ` (${save.error.message})` : ` (now at revision ${server?.revision})`}.
              <button type="button" className={btn} onClick={reload}>
                Reload their version
              </button>
              <button type="button" className={btn} onClick={reapply}>
                Keep my changes on top of theirs
              </button>
            </div>
          ) : (
            <div className="w-full">
              <ErrorMessage error={save.error ?? schedule.error} />
            </div>
          )}
        </div>
      </div>
    </div>
  );
}
