import { ErrorMessage } from "../../../components/ErrorMessage";
import { input, label } from "../../../components/ui";
import type { ChangeRequestStateJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import { Link, useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useChangeRequests } from "../api/list-change-requests";

export const stateLabel: Record<string, string> = {
  CHANGE_REQUEST_STATE_OPEN: "Open",
  CHANGE_REQUEST_STATE_APPLIED: "Applied",
  CHANGE_REQUEST_STATE_REJECTED: "Rejected",
  CHANGE_REQUEST_STATE_WITHDRAWN: "Withdrawn",
};

const tabs: { key: string; label: string; state?: ChangeRequestStateJson }[] = [
  { key: "open", label: "Open", state: "CHANGE_REQUEST_STATE_OPEN" },
  { key: "applied", label: "Applied", state: "CHANGE_REQUEST_STATE_APPLIED" },
  { key: "rejected", label: "Rejected", state: "CHANGE_REQUEST_STATE_REJECTED" },
  { key: "all", label: "All" },
];

// ChangeRequests is the review inbox of one environment: open requests first.
export default function ChangeRequests({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const [tabParam, setTab] = useSearchParam("tab");
  const env = envParam || "production";
  const tab = tabs.find((t) => t.key === tabParam) ?? tabs[0];
  const crs = useChangeRequests(org, project, env, tab.state);
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}/changes/${encodeURIComponent(env)}`;
  return (
    <section aria-labelledby="cr-title">
      <div className="mb-4 flex flex-wrap items-end gap-3">
        <h1 id="cr-title" className="mr-auto text-2xl font-bold">
          Change requests
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Environment</span>
          <select className={input} value={env} onChange={(e) => setEnv(e.target.value)}>
            {(envs.data?.environments ?? [{ key: env }]).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
              </option>
            ))}
          </select>
        </label>
      </div>
      <nav aria-label="Change request states" className="mb-3">
        <ul className="flex gap-1 border-b border-slate-300 dark:border-slate-700">
          {tabs.map((t) => (
            <li key={t.key}>
              <button
                type="button"
                aria-pressed={t.key === tab.key}
                onClick={() => setTab(t.key === "open" ? "" : t.key)}
                className={`rounded-t px-4 py-2 text-sm font-medium ${t.key === tab.key ? "bg-blue-700 text-white" : "hover:bg-slate-200 dark:hover:bg-slate-800"}`}
              >
                {t.label}
              </button>
            </li>
          ))}
        </ul>
      </nav>
      <ErrorMessage error={crs.error} />
      {crs.isPending ? (
        <p aria-busy="true">Loading…</p>
      ) : (crs.data?.changeRequests ?? []).length === 0 ? (
        <p>No {tab.key === "all" ? "" : tab.label.toLowerCase()} change request in {env}.</p>
      ) : (
        <ul className="flex flex-col gap-2">
          {(crs.data?.changeRequests ?? []).map((cr) => {
            const target = cr.change?.flagConfig ? `flag ${cr.change.flagConfig.flag}` : cr.change?.segment ? `segment ${cr.change.segment.key}` : "change";
            return (
              <li key={cr.id} className="rounded border border-slate-300 p-3 dark:border-slate-700">
                <Link href={`${base}/${encodeURIComponent(cr.id ?? "")}`} className="font-semibold text-blue-800 underline dark:text-blue-300">
                  {target}: {cr.description || "(no description)"}
                </Link>
                <div className="text-sm">
                  {stateLabel[String(cr.state)] ?? cr.state} · {(cr.approvals ?? []).length} of {cr.requiredApprovals ?? 1} approvals · by {cr.authorId} · {(cr.diff ?? []).length} changed fields
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
