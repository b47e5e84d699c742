import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnPrimary, card, input, label } from "../../../components/ui";
import type { ExplainFlagResponseJson, RolloutStepJson } from "../../../gen/flagforge/admin/v1/explain_pb";
import type { JsonObject } from "@bufbuild/protobuf";
import { useSearchParam } from "../../../lib/router";
import { useFlags } from "../../flags/api/list-flags";
import { operatorPhrase } from "../../flags/components/format";
import { valueText } from "../../flags/components/summary";
import { useEnvironments } from "../../projects/api/list-environments";
import { useExplainFlag } from "../api/explain-flag";

const reasons: Record<string, string> = {
  STATIC: "the flag serves one variant to everyone",
  DEFAULT: "no target or rule matched: the default serve decided",
  TARGETING_MATCH: "an individual target or a rule matched",
  SPLIT: "a percentage rollout chose the variant",
  DISABLED: "the flag is off in this environment",
  PREREQUISITE_FAILED: "a prerequisite was not met",
  ERROR: "the caller's default was served because of an error",
};

function Bucket({ r }: { r?: RolloutStepJson }) {
  if (!r) return null;
  if (r.missing) return <span> — rollout skipped: the context has no {r.bucketBy}</span>;
  return (
    <span>
      {" "}— bucket {r.bucket ?? 0} of {r.totalWeight} (hash of “{r.seed}” + {r.bucketBy} “{r.bucketValue}”) → <strong>{r.variant}</strong>
    </span>
  );
}

function Trace({ res }: { res: ExplainFlagResponseJson }) {
  const ex = res.explanation ?? {};
  return (
    <ol className="flex list-decimal flex-col gap-2 pl-6 text-sm">
      <li>The flag is {ex.on ? "on" : "off"}{res.reason === "ERROR" ? " (not evaluated: see the error)" : ""}.</li>
      {(ex.prerequisites ?? []).map((p) => (
        <li key={p.flagKey}>
          Prerequisite {p.flagKey} must serve {(p.variants ?? []).join(" or ")}:{" "}
          {p.missing ? "no such flag" : `it serves ${p.variant || "the default"} (${p.reason})`} — {p.met ? "met ✓" : "not met ✗"}
        </li>
      ))}
      {ex.targetsChecked && (
        <li>
          Individual targets for targetingKey “{ex.targetingKey ?? ""}”: {ex.targetVariant ? `listed, serves ${ex.targetVariant} ✓` : "not listed"}
        </li>
      )}
      {(ex.rules ?? []).map((r, i) => (
        <li key={r.id ?? i}>
          Rule {i + 1} ({r.id}): {r.disabled ? "disabled (skipped)" : !r.evaluated ? "not reached" : r.matched ? "matched ✓" : "did not match ✗"}
          <ul className="ml-4 list-disc">
            {(r.clauses ?? []).map((c, k) => (
              <li key={k}>
                {c.attribute} {c.negate ? "not " : ""}
                {operatorPhrase(c.operator)}:{" "}
                {!c.evaluated
                  ? "not evaluated"
                  : `${c.present ? `context has ${valueText(c.value)}` : "absent from the context"} — ${c.matched ? "matched ✓" : "no match ✗"}`}
              </li>
            ))}
          </ul>
          <Bucket r={r.rollout} />
        </li>
      ))}
      {ex.defaultReached && (
        <li>
          The default serve decided.
          <Bucket r={ex.defaultRollout} />
        </li>
      )}
    </ol>
  );
}

// Playground evaluates a flag for a typed context in an environment with the
// engine the evaluators run, and explains the decision step by step. The form
// lives in the URL, so a result is a permalink.
export default function Playground({ org, project }: { org: string; project: string }) {
  const flags = useFlags(org, project);
  const envs = useEnvironments(org, project);
  const [flag, setFlag] = useSearchParam("flag");
  const [env, setEnv] = useSearchParam("env");
  const [ctxParam, setCtxParam] = useSearchParam("ctx");
  const [ctxText, setCtxText] = useState(ctxParam || '{\n  "targetingKey": "user-1",\n  "country": "US"\n}');
  const [parseError, setParseError] = useState<Error | null>(null);
  const explain = useExplainFlag();
  const envKey = env || envs.data?.environments?.at(-1)?.key || "production";
  const flagKey = flag || flags.data?.[0]?.key || "";

  function run(e: FormEvent) {
    e.preventDefault();
    setParseError(null);
    let context: JsonObject;
    try {
      const v = JSON.parse(ctxText) as unknown;
      if (!v || typeof v !== "object" || Array.isArray(v)) throw new Error("the context must be a JSON object");
      context = v as JsonObject;
    } catch (err) {
      setParseError(new Error(`Context is not valid JSON: ${(err as Error).message}`));
      return;
    }
    setCtxParam(JSON.stringify(context));
    explain.mutate({ org, project, env: envKey, flag: flagKey, context });
  }
  const res = explain.data;
  const curl = `curl -s -X POST ${window.location.origin}/v1/orgs/${org}/projects/${project}/environments/${envKey}/flags/${flagKey}:explain -H "Authorization: Bearer $TOKEN" -d '${ctxText.replace(/\s+/g, " ").trim().replace(/'/g, "'\\''")}'`;
  return (
    <section aria-labelledby="pg-title" className="grid gap-4 lg:grid-cols-2">
      <form onSubmit={run} className={`${card} flex flex-col gap-3`}>
        <h1 id="pg-title" className="text-2xl font-bold">
          Playground
        </h1>
        <p className="text-sm">Why does a context get its value? The decision comes from the engine every evaluator runs, on the environment’s published rules.</p>
        <label className="flex flex-col gap-1">
          <span className={label}>Flag</span>
          <select className={input} value={flagKey} onChange={(e) => setFlag(e.target.value)}>
            {(flags.data ?? []).map((f) => (
              <option key={f.key} value={f.key}>
                {f.key}
              </option>
            ))}
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>Environment</span>
          <select className={input} value={envKey} onChange={(e) => setEnv(e.target.value)}>
            {(envs.data?.environments ?? []).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
              </option>
            ))}
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>Context (JSON)</span>
          <textarea
            className={`${input} h-40 font-mono`}
            value={ctxText}
            onChange={(e) => setCtxText(e.target.value)}
            aria-invalid={parseError || (explain.error && "field" in explain.error) ? true : undefined}
            aria-describedby="ctx-help"
          />
        </label>
        <p id="ctx-help" className="text-xs">
          Attributes of the subject; “targetingKey” is its identity. Typed JSON: numbers, booleans, lists and objects as they are.
        </p>
        <ErrorMessage error={parseError ?? explain.error} />
        <div className="flex gap-2">
          <button type="submit" className={btnPrimary} disabled={!flagKey || explain.isPending}>
            Evaluate
          </button>
          <button type="button" className={btn} onClick={() => void navigator.clipboard?.writeText(curl)}>
            Copy as curl
          </button>
        </div>
      </form>
      <div className={card} aria-live="polite">
        <h2 className="mb-2 text-lg font-semibold">Decision</h2>
        {!res ? (
          <p className="text-sm">Evaluate to see the decision and why.</p>
        ) : (
          <div className="flex flex-col gap-3">
            <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
              <dt className="font-semibold">Value</dt>
              <dd data-testid="decision-value" className="font-mono">{JSON.stringify(res.value ?? null)}</dd>
              <dt className="font-semibold">Variant</dt>
              <dd data-testid="decision-variant" className="font-mono">{res.variant || "—"}</dd>
              <dt className="font-semibold">Reason</dt>
              <dd>
                <span data-testid="decision-reason" className="font-mono">{res.reason}</span>: {reasons[res.reason ?? ""] ?? ""}
              </dd>
              {res.ruleId && (
                <>
                  <dt className="font-semibold">Rule</dt>
                  <dd className="font-mono">{res.ruleId}</dd>
                </>
              )}
              {res.errorCode && (
                <>
                  <dt className="font-semibold">Error</dt>
                  <dd>
                    {res.errorCode}: {res.errorMessage}
                  </dd>
                </>
              )}
              <dt className="font-semibold">Manifest version</dt>
              <dd className="font-mono">{res.manifestVersion}</dd>
            </dl>
            <h3 className="font-semibold">Path</h3>
            <Trace res={res} />
          </div>
        )}
      </div>
    </section>
  );
}
