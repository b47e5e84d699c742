import { useState } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, input, label } from "../../../components/ui";
import { useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { cancelSchedule, useScheduleMutation, useSchedules } from "../api/schedules";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

export const scheduleState: Record<string, string> = {
  SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL: "awaiting approval",
  SCHEDULED_CHANGE_STATE_PENDING: "pending",
  SCHEDULED_CHANGE_STATE_APPLIED: "applied",
  SCHEDULED_CHANGE_STATE_FAILED: "failed",
  SCHEDULED_CHANGE_STATE_CANCELLED: "cancelled",
};

// utcAndLocal renders a time in UTC and in the browser's time zone.
export const utcAndLocal = (iso?: string) =>
  iso ? `${iso.slice(0, 19).replace("T", " ")} UTC (${new Date(iso).toLocaleString()} your time)` : "";

// Schedules lists an environment's scheduled changes (run time in UTC and local
// time, state, failure reason) and cancels pending ones.
export default function Schedules({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const env = envParam || "production";
  const list = useSchedules(org, project, env);
  const cancel = useScheduleMutation(org, project, env, (id: string) => cancelSchedule(org, project, env, id));
  const [confirming, setConfirming] = useState("");
  const can = useCan(org, "schedule", "write", project, env);
  return (
    <section aria-labelledby="sch-title" className="flex flex-col gap-4">
      <div className="flex flex-wrap items-end gap-3">
        <h1 id="sch-title" className="mr-auto text-2xl font-bold">
          Scheduled changes
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
      <p className="text-sm">Schedule a change from a flag’s page (“Schedule for”). A schedule based on a revision that is no longer current when it runs fails and changes nothing.</p>
      <ErrorMessage error={list.error ?? cancel.error} />
      <table className="w-full text-sm">
        <caption className="sr-only">Scheduled changes in {env}</caption>
        <thead>
          <tr className="border-b border-slate-400 text-left">
            <th scope="col" className="py-2 pr-3">Flag</th>
            <th scope="col" className="py-2 pr-3">Runs at</th>
            <th scope="col" className="py-2 pr-3">State</th>
            <th scope="col" className="py-2 pr-3">Comment</th>
            <th scope="col" className="py-2 pr-3">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(list.data?.scheduledChanges ?? []).map((c) => (
            <tr key={c.id} className="border-b border-slate-200 dark:border-slate-800">
              <th scope="row" className="py-2 pr-3 text-left font-mono font-normal">{c.flag}</th>
              <td className="py-2 pr-3">{utcAndLocal(c.runTime)}</td>
              <td className="py-2 pr-3">
                {scheduleState[String(c.state)] ?? c.state}
                {c.failureReason ? `: ${c.failureReason}` : ""}
              </td>
              <td className="py-2 pr-3">{c.comment}</td>
              <td className="py-2 pr-3">
                {(c.state === "SCHEDULED_CHANGE_STATE_PENDING" || c.state === "SCHEDULED_CHANGE_STATE_AWAITING_APPROVAL") &&
                  (confirming === c.id ? (
                    <button type="button" className={btnDanger} onClick={() => cancel.mutate(c.id ?? "", { onSuccess: () => setConfirming("") })}>
                      Confirm cancel<span className="sr-only"> schedule of {c.flag}</span>
                    </button>
                  ) : (
                    <button type="button" className={btn} {...deniedProps(can, "sch-denied")} onClick={() => setConfirming(c.id ?? "")}>
                      Cancel<span className="sr-only"> schedule of {c.flag}</span>
                    </button>
                  ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Denied can={can} id="sch-denied" />
      {list.data && (list.data.scheduledChanges ?? []).length === 0 && <p>Nothing scheduled in {env}.</p>}
    </section>
  );
}
