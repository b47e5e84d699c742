import { ErrorMessage } from "../../../components/ErrorMessage";
import { input, label } from "../../../components/ui";
import { type ChangeRequestQuery } from "../api/list-change-requests";
import { Link, useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useChangeRequests } from "../api/list-change-requests";

export const stateLabel: Record<string, string> = {
  CHANGE_REQUEST_STATE_OPEN: "Open",
  CHANGE_REQUEST_STATE_APPLIED: "Applied",
  CHANGE_REQUEST_STATE_REJECTED: "Rejected",
  CHANGE_REQUEST_STATE_WITHDRAWN: "Withdrawn",
};

// The inbox tabs; the first is the default. "Needs my review" and "Mine" are the
// server's filters of the caller's part (ListChangeRequests inbox).
const tabs: { key: string; label: string; empty: string; query: ChangeRequestQuery }[] = [
  { key: "review", label: "Needs my review", empty: "Nothing needs your review", query: { inbox: "CHANGE_REQUEST_INBOX_NEEDS_MY_REVIEW" } },
  { key: "mine", label: "Mine", empty: "You have no change request", query: { inbox: "CHANGE_REQUEST_INBOX_MINE" } },
  { key: "open", label: "Open", empty: "No open change request", query: { state: "CHANGE_REQUEST_STATE_OPEN" } },
  { key: "applied", label: "Applied", empty: "No applied change request", query: { state: "CHANGE_REQUEST_STATE_APPLIED" } },
  { key: "rejected", label: "Rejected", empty: "No rejected change request", query: { state: "CHANGE_REQUEST_STATE_REJECTED" } },
  { key: "all", label: "All", empty: "No change request", query: {} },
];

// ChangeRequests is the review inbox of one environment: what needs the caller's
// review first, then their own, then by state.
export default function ChangeRequests({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const [tabParam, setTab] = useSearchParam("tab");
  const env = envParam || "production";
  const tab = tabs.find((t) => t.key === tabParam) ?? tabs[0];
  const crs = useChangeRequests(org, project, env, tab.query);
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
      <nav aria-label="Change request inbox" className="mb-3">
        <ul className="flex flex-wrap gap-1 border-b border-slate-300 dark:border-slate-700">
          {tabs.map((t) => (
            <li key={t.key}>
              <button
                type="button"
                aria-pressed={t.key === tab.key}
                onClick={() => setTab(t.key === tabs[0].key ? "" : t.key)}
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
        <p>{tab.empty} in {env}.</p>
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
