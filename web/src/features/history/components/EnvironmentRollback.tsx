import { useState, type FormEvent } from "react";
import { DiffTable } from "../../../components/DiffTable";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, card, input, label } from "../../../components/ui";
import type { RollbackEnvironmentResponseJson, RollbackItemJson } from "../../../gen/flagforge/admin/v1/history_pb";
import { Link, useSearchParam } from "../../../lib/router";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import { useEnvironments } from "../../projects/api/list-environments";
import { useRollbackEnvironment, type RollbackInput } from "../api/history";

function Item({ it }: { it: RollbackItemJson }) {
  return (
    <li className="border-t border-slate-200 py-2 dark:border-slate-800">
      <p className="font-medium">
        {it.kind === "segment" ? "Segment" : "Flag"} <code>{it.key}</code>: {it.action}
        {it.reason ? ` — ${it.reason}` : ""}
      </p>
      {(it.diff ?? []).length > 0 && <DiffTable ops={it.diff ?? []} caption={`What the rollback changes in ${it.key}`} />}
    </li>
  );
}

// EnvironmentRollback restores every flag configuration and segment of an
// environment to a published manifest version or a point in time: preview what
// changes (a dry run), then apply it as one audited write — or, where the
// environment requires approvals, open one change request for it.
export default function EnvironmentRollback({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const env = envParam || envs.data?.environments?.[0]?.key || "";
  const envInfo = envs.data?.environments?.find((e) => e.key === env);
  const protectedEnv = !!envInfo?.settings?.approvalsRequired;
  const [by, setBy] = useState<"version" | "time">("version");
  const [version, setVersion] = useState("");
  const [at, setAt] = useState("");
  const [comment, setComment] = useState("");
  const [preview, setPreview] = useState<{ input: RollbackInput; res: RollbackEnvironmentResponseJson } | null>(null);
  const [done, setDone] = useState<RollbackEnvironmentResponseJson | null>(null);
  const rollback = useRollbackEnvironment(org, project, env);
  const can = useCan(org, "flag_config", "write", project, env);
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;

  const target = (): RollbackInput => (by === "version" ? { manifestVersion: version.trim(), dryRun: true, comment } : { time: at ? new Date(at).toISOString() : "", dryRun: true, comment });
  function previewIt(e: FormEvent) {
    e.preventDefault();
    setDone(null);
    const input = target();
    rollback.mutate(input, { onSuccess: (res) => setPreview({ input, res }) });
  }
  function apply() {
    if (!preview) return;
    rollback.mutate({ ...preview.input, dryRun: false, comment }, { onSuccess: (res) => { setDone(res); setPreview(null); } });
  }
  const changes = preview?.res.changes ?? [];
  return (
    <div className="flex flex-col gap-4">
      <h1 className="text-2xl font-bold">Roll back an environment</h1>
      <p className="text-sm">
        Restores every flag configuration and segment of the environment to a published manifest version or to a time, in one
        write. Preview first; nothing changes until you apply.
      </p>
      <form onSubmit={previewIt} className={`${card} flex flex-wrap items-end gap-3`} aria-label="Rollback target">
        <div className="flex flex-col gap-1">
          <label htmlFor="rb-env" className={label}>Environment</label>
          <select id="rb-env" className={input} value={env} onChange={(e) => { setEnv(e.target.value); setPreview(null); setDone(null); }}>
            {(envs.data?.environments ?? []).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
                {e.settings?.approvalsRequired ? " (approvals)" : ""}
              </option>
            ))}
          </select>
        </div>
        <fieldset className="flex items-center gap-3">
          <legend className={label}>Restore to</legend>
          <label className="flex items-center gap-1">
            <input type="radio" name="rb-by" checked={by === "version"} onChange={() => setBy("version")} /> a manifest version
          </label>
          <label className="flex items-center gap-1">
            <input type="radio" name="rb-by" checked={by === "time"} onChange={() => setBy("time")} /> a time
          </label>
        </fieldset>
        {by === "version" ? (
          <label className="flex flex-col gap-1">
            <span className={label}>Manifest version (now {envInfo?.manifestVersion ?? "?"})</span>
            <input className={`${input} w-32`} inputMode="numeric" value={version} onChange={(e) => setVersion(e.target.value)} />
          </label>
        ) : (
          <label className="flex flex-col gap-1">
            <span className={label}>Time (your time zone)</span>
            <input type="datetime-local" step={1} className={input} value={at} onChange={(e) => setAt(e.target.value)} />
          </label>
        )}
        <button type="submit" className={btn} {...deniedProps(can, "rollback-denied")} disabled={!can.allowed || rollback.isPending || (by === "version" ? !version.trim() : !at)}>
          Preview
        </button>
        <Denied can={can} id="rollback-denied" />
      </form>
      <ErrorMessage error={rollback.error} />
      {preview && (
        <section className={card} aria-labelledby="rb-preview">
          <h2 id="rb-preview" className="text-lg font-semibold">
            Preview: {env} back to {preview.res.target}: {changes.length} change{changes.length === 1 ? "" : "s"}
            {(preview.res.skipped ?? []).length ? `, ${(preview.res.skipped ?? []).length} skipped` : ""}
          </h2>
          {changes.length === 0 && <p className="text-sm">Nothing would change: the environment is already in that state.</p>}
          <ul aria-label="What changes">
            {changes.map((it) => (
              <Item key={`${it.kind}/${it.key}`} it={it} />
            ))}
          </ul>
          {(preview.res.skipped ?? []).length > 0 && (
            <ul aria-label="Left as it is">
              {(preview.res.skipped ?? []).map((it) => (
                <Item key={`s/${it.kind}/${it.key}`} it={it} />
              ))}
            </ul>
          )}
          {changes.length > 0 && (
            <div className="mt-3 flex flex-wrap items-end gap-3">
              <label className="flex flex-col gap-1">
                <span className={label}>Why (audit log{protectedEnv ? ", change request" : ""})</span>
                <input className={`${input} w-72`} value={comment} onChange={(e) => setComment(e.target.value)} />
              </label>
              <button type="button" className={btnDanger} {...deniedProps(can, "rollback-denied")} disabled={!can.allowed || rollback.isPending} onClick={apply}>
                {protectedEnv ? `Propose rolling back ${env} (change request)` : `Roll back ${env}`}
              </button>
            </div>
          )}
        </section>
      )}
      <div role="status" className="text-sm">
        {done &&
          (done.changeRequest ? (
            <>
              {env} requires approval: change request {done.changeRequest.id} proposes the rollback to {done.target}.{" "}
              <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/changes/${encodeURIComponent(env)}/${encodeURIComponent(done.changeRequest.id ?? "")}`}>
                Open the change request
              </Link>
            </>
          ) : done.applied ? (
            `Rolled back ${env} to ${done.target}: ${(done.changes ?? []).length} change(s) applied.`
          ) : (
            `Nothing changed: ${env} is already at ${done.target}.`
          ))}
      </div>
    </div>
  );
}
