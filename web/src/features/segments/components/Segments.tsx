import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { SegmentJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { ApiError } from "../../../lib/api";
import { useSearchParam } from "../../../lib/router";
import { ListInput } from "../../flags/components/RuleBuilder";
import { clauseSummary } from "../../flags/components/summary";
import { useEnvironments } from "../../projects/api/list-environments";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import { createSegment, deleteSegment, updateSegment, useSegmentMutation, useSegments } from "../api/segments";

function SegmentEditor({ org, project, env, segment, onDone }: { org: string; project: string; env: string; segment: SegmentJson | null; onDone: (msg: string) => void }) {
  const isNew = !segment;
  const [key, setKey] = useState(segment?.key ?? "");
  const [description, setDescription] = useState(segment?.description ?? "");
  const [included, setIncluded] = useState(segment?.included ?? []);
  const [excluded, setExcluded] = useState(segment?.excluded ?? []);
  const save = useSegmentMutation(org, project, env, (s: SegmentJson) =>
    isNew ? createSegment(org, project, env, s).then(() => `Created segment ${s.key}.`) : updateSegment(org, project, env, s, "").then((r) => (r.changeRequest ? `Change request ${r.changeRequest.id} created for review.` : `Saved segment ${s.key}.`)),
  );
  const field = save.error instanceof ApiError ? save.error.field ?? "" : "";
  function submit(e: FormEvent) {
    e.preventDefault();
    save.mutate({ ...(segment ?? {}), key, description, included, excluded }, { onSuccess: (msg) => onDone(msg) });
  }
  return (
    <form onSubmit={submit} className={`${card} flex flex-col gap-3`} aria-label={isNew ? "New segment" : `Edit segment ${segment?.key}`}>
      <div className="flex flex-wrap gap-3">
        <label className="flex flex-col gap-1">
          <span className={label}>Segment key</span>
          <input className={input} required disabled={!isNew} value={key} onChange={(e) => setKey(e.target.value)} aria-invalid={field.includes("key") || undefined} />
        </label>
        <label className="flex flex-grow flex-col gap-1">
          <span className={label}>Description</span>
          <input className={input} value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
      </div>
      <div className="grid gap-3 md:grid-cols-2">
        <div>
          <ListInput label="Always included (targetingKey)" multiline values={included} invalid={field.includes("included") || undefined} onChange={setIncluded} />
          <p className="text-xs">{included.length} included</p>
        </div>
        <div>
          <ListInput label="Always excluded (targetingKey)" multiline values={excluded} invalid={field.includes("excluded") || undefined} onChange={setExcluded} />
          <p className="text-xs">{excluded.length} excluded</p>
        </div>
      </div>
      {(segment?.rules ?? []).length > 0 && (
        <ul className="text-sm">
          {(segment?.rules ?? []).map((r, i) => (
            <li key={r.id ?? i}>Or if {(r.clauses ?? []).map(clauseSummary).join(" and ")}</li>
          ))}
        </ul>
      )}
      <ErrorMessage error={save.error} />
      <div className="flex gap-2">
        <button type="submit" className={btnPrimary} disabled={save.isPending}>
          {isNew ? "Create segment" : "Save segment"}
        </button>
        <button type="button" className={btn} onClick={() => onDone("")}>
          Cancel
        </button>
      </div>
    </form>
  );
}

// Segments lists and edits an environment's reusable sets of contexts: keys always
// in, keys always out, and rules (a context is in when included, or not excluded
// and any rule matches). Deleting a segment a flag uses is refused by the server,
// with its reason.
export default function Segments({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const env = envParam || "production";
  const segs = useSegments(org, project, env);
  const can = useCan(org, "segment", "write", project, env);
  const [editing, setEditing] = useState<SegmentJson | "new" | null>(null);
  const [notice, setNotice] = useState("");
  const [confirming, setConfirming] = useState("");
  const del = useSegmentMutation(org, project, env, (s: SegmentJson) => deleteSegment(org, project, env, s.key ?? "", s.revision ?? "0"));
  return (
    <section aria-labelledby="seg-title" className="flex flex-col gap-4">
      <div className="flex flex-wrap items-end gap-3">
        <h1 id="seg-title" className="mr-auto text-2xl font-bold">
          Segments
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Environment</span>
          <select className={input} value={env} onChange={(e) => { setEnv(e.target.value); setEditing(null); }}>
            {(envs.data?.environments ?? [{ key: env }]).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
              </option>
            ))}
          </select>
        </label>
        <button type="button" className={btnPrimary} {...deniedProps(can, "seg-denied")} onClick={() => setEditing("new")}>
          New segment
        </button>
        <Denied can={can} id="seg-denied" />
      </div>
      <p role="status" className="text-sm">{notice}</p>
      {editing && (
        <SegmentEditor
          key={editing === "new" ? "new" : editing.key}
          org={org}
          project={project}
          env={env}
          segment={editing === "new" ? null : editing}
          onDone={(msg) => { setEditing(null); setNotice(msg); }}
        />
      )}
      <ErrorMessage error={segs.error ?? del.error} />
      <table className="w-full text-sm">
        <caption className="sr-only">Segments of {env}</caption>
        <thead>
          <tr className="border-b border-slate-400 text-left">
            <th scope="col" className="py-2 pr-3">Segment</th>
            <th scope="col" className="py-2 pr-3">Description</th>
            <th scope="col" className="py-2 pr-3">Included</th>
            <th scope="col" className="py-2 pr-3">Excluded</th>
            <th scope="col" className="py-2 pr-3">Rules</th>
            <th scope="col" className="py-2 pr-3">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(segs.data?.segments ?? []).map((s) => (
            <tr key={s.key} className="border-b border-slate-200 dark:border-slate-800">
              <th scope="row" className="py-2 pr-3 text-left font-mono font-normal">{s.key}</th>
              <td className="py-2 pr-3">{s.description}</td>
              <td className="py-2 pr-3">{(s.included ?? []).length}</td>
              <td className="py-2 pr-3">{(s.excluded ?? []).length}</td>
              <td className="py-2 pr-3">{(s.rules ?? []).length}</td>
              <td className="flex gap-1 py-2 pr-3">
                <button type="button" className={btn} {...deniedProps(can, "seg-denied")} onClick={() => setEditing(s)}>
                  Edit<span className="sr-only"> {s.key}</span>
                </button>
                {confirming === s.key ? (
                  <button type="button" className={btnDanger} onClick={() => del.mutate(s, { onSuccess: () => { setConfirming(""); setNotice(`Deleted segment ${s.key}.`); }, onError: () => setConfirming("") })}>
                    Confirm delete<span className="sr-only"> {s.key}</span>
                  </button>
                ) : (
                  <button type="button" className={btn} {...deniedProps(can, "seg-denied")} onClick={() => setConfirming(s.key ?? "")}>
                    Delete<span className="sr-only"> {s.key}</span>
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {segs.data && (segs.data.segments ?? []).length === 0 && <p>No segment in {env} yet. Rules use one with the operator “is in segment”.</p>}
    </section>
  );
}
