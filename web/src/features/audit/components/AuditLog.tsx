import { useState } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { input, label } from "../../../components/ui";
import type { AuditEntryJson } from "../../../gen/flagforge/admin/v1/audit_pb";
import { useSearchParam } from "../../../lib/router";
import { DiffTable } from "../../../components/DiffTable";
import { useAudit } from "../api/list-audit";
import { useVerifyAudit } from "../api/verify-audit";
import { btn } from "../../../components/ui";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

// toRFC3339 turns a datetime-local value (the user's local time) into UTC.
const toRFC3339 = (v: string) => (v ? new Date(v).toISOString() : undefined);

function Diff({ e }: { e: AuditEntryJson }) {
  if (!(e.diff ?? []).length) return <p className="text-sm">No field changed (or the entry records no before/after).</p>;
  return <DiffTable ops={e.diff ?? []} caption={`Changes of entry ${e.sequence}`} />;
}

// AuditLog lists who changed what across the organization, newest first,
// filtered by actor, action, resource and time (all in the URL); each entry opens
// to its before/after diff.
export default function AuditLog({ org }: { org: string; project: string }) {
  const [resource, setResource] = useSearchParam("resource");
  const [actorId, setActor] = useSearchParam("actor");
  const [action, setAction] = useSearchParam("action");
  const [start, setStart] = useSearchParam("from");
  const [end, setEnd] = useSearchParam("to");
  const [text, setText] = useSearchParam("q");
  const can = useCan(org, "audit", "read");
  const audit = useAudit(org, { resource, actorId, action, startTime: toRFC3339(start), endTime: toRFC3339(end) }, can.allowed);
  const [open, setOpen] = useState<string | null>(null);
  const verify = useVerifyAudit(org);
  const v = verify.data;
  const entries = (audit.data?.entries ?? []).filter((e) => !text || JSON.stringify(e).toLowerCase().includes(text.toLowerCase()));
  const field = (name: string, value: string, set: (v: string) => void, type = "text", placeholder = "") => (
    <label className="flex flex-col gap-1">
      <span className={label}>{name}</span>
      <input className={input} type={type} value={value} placeholder={placeholder} onChange={(e) => set(e.target.value)} />
    </label>
  );
  return (
    <section aria-labelledby="audit-title">
      <div className="mb-4 flex flex-wrap items-center gap-3">
        <h1 id="audit-title" className="mr-auto text-2xl font-bold">
          Audit log
        </h1>
        <p role="status" className="text-sm">
          {v
            ? v.ok
              ? `Chain verified: ${v.entriesChecked ?? 0} entries, every hash and link intact.`
              : `Chain broken at entry ${v.firstBroken?.sequence ?? "?"}: ${v.problem ?? ""}`
            : ""}
        </p>
        <button type="button" className={btn} disabled={verify.isPending} {...deniedProps(can, "audit-denied")} onClick={() => verify.mutate()}>
          Verify chain now
        </button>
        <Denied can={can} id="audit-denied" />
      </div>
      <ErrorMessage error={verify.error} />
      <form className="mb-4 flex flex-wrap items-end gap-3" role="search" aria-label="Filter the audit log" onSubmit={(e) => e.preventDefault()}>
        {field("Resource (exact, or prefix ending in /)", resource, setResource, "text", "projects/web/")}
        {field("Actor id", actorId, setActor)}
        {field("Action", action, setAction, "text", "flag_config.update")}
        {field("From", start, setStart, "datetime-local")}
        {field("To", end, setEnd, "datetime-local")}
        {field("Contains", text, setText)}
      </form>
      <ErrorMessage error={audit.error} />
      {audit.isPending ? (
        <p aria-busy="true">Loading…</p>
      ) : (
        <table className="w-full border-collapse text-sm">
          <caption className="sr-only">Audit entries, newest first</caption>
          <thead>
            <tr className="border-b border-slate-400 text-left">
              <th scope="col" className="py-2 pr-3">Time (UTC)</th>
              <th scope="col" className="py-2 pr-3">Actor</th>
              <th scope="col" className="py-2 pr-3">Action</th>
              <th scope="col" className="py-2 pr-3">Resource</th>
              <th scope="col" className="py-2 pr-3">Comment</th>
            </tr>
          </thead>
          {entries.map((e) => {
            const id = e.id ?? "";
            const isOpen = open === id;
            return (
              <tbody key={id} className="border-b border-slate-200 dark:border-slate-800">
                <tr>
                  <td className="py-2 pr-3 font-mono">
                    <button type="button" aria-expanded={isOpen} className="text-left text-blue-800 underline dark:text-blue-300" onClick={() => setOpen(isOpen ? null : id)}>
                      {(e.time ?? "").replace("T", " ").replace(/\.\d+Z$/, "Z")}
                      <span className="sr-only"> — show the changes of entry {e.sequence}</span>
                    </button>
                  </td>
                  <td className="py-2 pr-3">{e.actorName || e.actorId}</td>
                  <td className="py-2 pr-3 font-mono">{e.action}</td>
                  <td className="py-2 pr-3 font-mono">{e.resource}</td>
                  <td className="py-2 pr-3">{e.comment}</td>
                </tr>
                {isOpen && (
                  <tr>
                    <td colSpan={5} className="pb-3">
                      <Diff e={e} />
                    </td>
                  </tr>
                )}
              </tbody>
            );
          })}
        </table>
      )}
      {audit.data && entries.length === 0 && <p className="mt-3">No entry matches these filters.</p>}
    </section>
  );
}
