import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { ReleasePlanJson } from "../../../gen/flagforge/admin/v1/release_plan_pb";
import { ApiError } from "../../../lib/api";
import { Link } from "../../../lib/router";
import { useFlag } from "../../flags/api/get-flag";
import { actOnReleasePlan, createReleasePlan, useReleasePlanMutation, useReleasePlans, type PlanAction, type PlanInput } from "../api/release-plans";
import { GuardrailFields } from "./GuardrailFields";
import { buildGuardrails, describeGuardrail, emptyGuardrail } from "./guardrails";
import { describeDuration, describeStep, parseSteps } from "./steps";

const stateText: Record<string, string> = {
  RELEASE_PLAN_STATE_AWAITING_APPROVAL: "Awaiting approval",
  RELEASE_PLAN_STATE_READY: "Ready",
  RELEASE_PLAN_STATE_RUNNING: "Running",
  RELEASE_PLAN_STATE_PAUSED: "Paused",
  RELEASE_PLAN_STATE_COMPLETED: "Completed",
  RELEASE_PLAN_STATE_ROLLED_BACK: "Rolled back",
  RELEASE_PLAN_STATE_CANCELLED: "Cancelled",
};

const guardText: Record<string, string> = {
  GUARDRAIL_STATUS_PENDING: "not evaluated yet",
  GUARDRAIL_STATUS_OK: "holding",
  GUARDRAIL_STATUS_BREACHED: "breached",
  GUARDRAIL_STATUS_ERROR: "could not be evaluated",
};

// actionsFor lists what a person may do to a plan in its state.
const actionsFor: Record<string, PlanAction[]> = {
  RELEASE_PLAN_STATE_READY: ["start", "cancel"],
  RELEASE_PLAN_STATE_RUNNING: ["pause", "rollback"],
  RELEASE_PLAN_STATE_PAUSED: ["resume", "rollback", "cancel"],
};
const actionText: Record<PlanAction, string> = { start: "Start", pause: "Pause", resume: "Resume", rollback: "Roll back", cancel: "Cancel plan" };

const time = (iso?: string) => (iso ? `${iso.slice(0, 19).replace("T", " ")} UTC` : "");

// ReleasePlanPage shows a flag's release plan in one environment (steps, state,
// guardrail state) with start, pause, resume and roll back, and creates a plan
// when the flag has no open one.
export default function ReleasePlanPage({ org, project, flag, env }: { org: string; project: string; flag: string; env: string }) {
  const plans = useReleasePlans(org, project, env, flag);
  const all = plans.data?.releasePlans ?? [];
  const open = [...all].reverse().find((p) => p.state !== "RELEASE_PLAN_STATE_COMPLETED" && p.state !== "RELEASE_PLAN_STATE_ROLLED_BACK" && p.state !== "RELEASE_PLAN_STATE_CANCELLED");
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  return (
    <section aria-labelledby="rp-title" className="flex flex-col gap-4">
      <h1 id="rp-title" className="text-2xl font-bold">
        Release plan: <span className="font-mono">{flag}</span> in {env}
      </h1>
      <p className="text-sm">
        Each step serves its share of the new variant for at least its duration; guardrails are checked before each step and while the plan runs, and a
        breach pauses the plan and rolls the flag back by itself.{" "}
        <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/flags/${encodeURIComponent(flag)}/${encodeURIComponent(env)}`}>
          Back to the flag
        </Link>
      </p>
      <ErrorMessage error={plans.error} />
      {open ? <PlanView org={org} project={project} env={env} plan={open} /> : plans.data && <NewPlan org={org} project={project} env={env} flag={flag} />}
      {all.length > 0 && (
        <table className="w-full text-sm">
          <caption className="text-left font-semibold">All plans of {flag} in {env}</caption>
          <thead>
            <tr className="border-b border-slate-400 text-left">
              <th scope="col" className="py-2 pr-3">Created</th>
              <th scope="col" className="py-2 pr-3">Steps</th>
              <th scope="col" className="py-2 pr-3">State</th>
              <th scope="col" className="py-2 pr-3">Reason</th>
            </tr>
          </thead>
          <tbody>
            {[...all].reverse().map((p) => (
              <tr key={p.id} className="border-b border-slate-200 dark:border-slate-800">
                <td className="py-2 pr-3">{time(p.createTime)}</td>
                <td className="py-2 pr-3">
                  {p.appliedSteps ?? 0} of {p.steps?.length ?? 0} applied
                </td>
                <td className="py-2 pr-3">{stateText[String(p.state)] ?? p.state}</td>
                <td className="py-2 pr-3">{p.pauseReason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function PlanView({ org, project, env, plan }: { org: string; project: string; env: string; plan: ReleasePlanJson }) {
  const [comment, setComment] = useState("");
  const act = useReleasePlanMutation(org, project, env, plan.flag ?? "", (a: PlanAction) => actOnReleasePlan(org, project, env, plan.id ?? "", a, comment));
  const applied = plan.appliedSteps ?? 0;
  const states = new Map((plan.guardrailStates ?? []).map((s) => [s.name, s]));
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  return (
    <div className={`${card} flex flex-col gap-3`}>
      <p role="status" className="text-lg">
        <strong>{stateText[String(plan.state)] ?? plan.state}</strong>: step {applied} of {plan.steps?.length ?? 0} applied
        {plan.pauseReason ? ` — ${plan.pauseReason}` : ""}
      </p>
      {plan.state === "RELEASE_PLAN_STATE_AWAITING_APPROVAL" && plan.changeRequestId && (
        <p className="text-sm">
          This environment requires approvals: the whole plan waits for{" "}
          <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/changes/${encodeURIComponent(env)}/${encodeURIComponent(plan.changeRequestId)}`}>
            its change request
          </Link>
          ; once applied, every step runs without another approval.
        </p>
      )}
      <table className="w-full text-sm">
        <caption className="text-left font-semibold">Steps</caption>
        <thead>
          <tr className="border-b border-slate-400 text-left">
            <th scope="col" className="py-1 pr-3">Step</th>
            <th scope="col" className="py-1 pr-3">Serves</th>
            <th scope="col" className="py-1 pr-3">Held for at least</th>
            <th scope="col" className="py-1 pr-3">Status</th>
          </tr>
        </thead>
        <tbody>
          {(plan.steps ?? []).map((st, i) => (
            <tr key={i} className="border-b border-slate-200 dark:border-slate-800">
              <th scope="row" className="py-1 pr-3 text-left font-normal">Step {i + 1}</th>
              <td className="py-1 pr-3">{describeStep(st)}</td>
              <td className="py-1 pr-3">{describeDuration(st.minDuration)}</td>
              <td className="py-1 pr-3">{i < applied - 1 ? "done" : i === applied - 1 ? "serving now" : i === (plan.lastSafeStep ?? -1) ? "safe" : "to do"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {plan.nextStepTime && <p className="text-sm">Next step due {time(plan.nextStepTime)}.</p>}
      {(plan.guardrails ?? []).length > 0 && (
        <table className="w-full text-sm">
          <caption className="text-left font-semibold">Guardrails</caption>
          <thead>
            <tr className="border-b border-slate-400 text-left">
              <th scope="col" className="py-1 pr-3">Guardrail</th>
              <th scope="col" className="py-1 pr-3">Check</th>
              <th scope="col" className="py-1 pr-3">State</th>
              <th scope="col" className="py-1 pr-3">Last value</th>
              <th scope="col" className="py-1 pr-3">Last evaluated</th>
            </tr>
          </thead>
          <tbody>
            {(plan.guardrails ?? []).map((g) => {
              const s = states.get(g.name);
              return (
                <tr key={g.name} className="border-b border-slate-200 dark:border-slate-800">
                  <th scope="row" className="py-1 pr-3 text-left font-mono font-normal">{g.name}</th>
                  <td className="py-1 pr-3 font-mono text-xs">
                    {describeGuardrail(g)}
                  </td>
                  <td className="py-1 pr-3">
                    {guardText[String(s?.status)] ?? "not evaluated yet"}
                    {s?.error ? `: ${s.error}` : ""}
                  </td>
                  <td className="py-1 pr-3">{s?.lastEvaluateTime ? s.lastValue ?? 0 : ""}</td>
                  <td className="py-1 pr-3">{time(s?.lastEvaluateTime)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {(plan.guardrails ?? []).length === 0 && <p className="text-sm">No guardrails: only a person pauses or rolls back this plan.</p>}
      <p className="text-sm">On a breach: {plan.breachAction === "BREACH_ACTION_OFF" ? "turn the flag off" : "roll back to the last safe step"}.</p>
      {(actionsFor[String(plan.state)] ?? []).length > 0 && (
        <div className="flex flex-wrap items-end gap-2">
          <label className="flex flex-col gap-1">
            <span className={label}>Comment</span>
            <input className={input} value={comment} onChange={(e) => setComment(e.target.value)} />
          </label>
          {(actionsFor[String(plan.state)] ?? []).map((a) => (
            <button key={a} type="button" className={a === "rollback" ? btnDanger : a === "start" || a === "resume" ? btnPrimary : btn} disabled={act.isPending} onClick={() => act.mutate(a)}>
              {actionText[a]}
            </button>
          ))}
        </div>
      )}
      <ErrorMessage error={act.error} />
    </div>
  );
}

function NewPlan({ org, project, env, flag }: { org: string; project: string; env: string; flag: string }) {
  const [steps, setSteps] = useState("1%/1h, 5%/4h, 25%/1d, 100%");
  const [variant, setVariant] = useState("on");
  const [rest, setRest] = useState("off");
  const [guard, setGuard] = useState(() => emptyGuardrail("on"));
  const def = useFlag(org, project, flag);
  const variants = (def.data?.flag?.variants ?? []).map((v) => v.key ?? "");
  const [onBreach, setOnBreach] = useState("BREACH_ACTION_LAST_SAFE_STEP");
  const [description, setDescription] = useState("");
  const [parseError, setParseError] = useState("");
  const create = useReleasePlanMutation(org, project, env, flag, (i: PlanInput) => createReleasePlan(org, project, env, i));
  const field = create.error instanceof ApiError ? create.error.field ?? "" : "";
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setParseError("");
    try {
      const guardrails = buildGuardrails(guard);
      create.mutate({ flag, steps: parseSteps(steps, variant, rest), guardrails, breachAction: onBreach as PlanInput["breachAction"], description });
    } catch (err) {
      setParseError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <form onSubmit={submit} className={`${card} flex flex-col gap-3`} aria-labelledby="np-title">
      <h2 id="np-title" className="text-lg font-semibold">
        New release plan
      </h2>
      <label className="flex flex-col gap-1">
        <span className={label}>Steps (share/hold, comma separated)</span>
        <input className={input} value={steps} onChange={(e) => setSteps(e.target.value)} aria-invalid={parseError.startsWith("Step") || field.startsWith("steps") || undefined} />
      </label>
      <div className="flex flex-wrap gap-3">
        <label className="flex flex-col gap-1">
          <span className={label}>Variant rolled out</span>
          <input
            className={input}
            value={variant}
            onChange={(e) => {
              const v = e.target.value;
              // The SDK-error guardrail watches the variant rolled out unless set otherwise.
              setGuard((g) => (g.variant === variant ? { ...g, variant: v } : g));
              setVariant(v);
            }}
          />
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>Everyone else gets</span>
          <input className={input} value={rest} onChange={(e) => setRest(e.target.value)} />
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>On a breach</span>
          <select className={input} value={onBreach} onChange={(e) => setOnBreach(e.target.value)}>
            <option value="BREACH_ACTION_LAST_SAFE_STEP">roll back to the last safe step</option>
            <option value="BREACH_ACTION_OFF">turn the flag off</option>
          </select>
        </label>
      </div>
      <GuardrailFields draft={guard} variants={variants} error={create.error} field={field} onChange={setGuard} />
      <label className="flex flex-col gap-1">
        <span className={label}>Description</span>
        <input className={input} value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      {parseError && (
        <p role="alert" className="text-sm text-red-800 dark:text-red-300">
          {parseError}
        </p>
      )}
      {!field.startsWith("guardrails") && <ErrorMessage error={create.error} />}
      <div>
        <button type="submit" className={btnPrimary} disabled={create.isPending}>
          Create plan
        </button>
      </div>
    </form>
  );
}
