import type { GuardrailJson, SdkErrorsMeasureJson } from "../../../gen/flagforge/admin/v1/release_plan_pb";
import { describeDuration, parseWindow } from "./steps";

// describeGuardrail renders a guardrail's check the way the CLI does
// (cli/release.CheckText): the PromQL query, or for SDK-reported errors
// `SDK-reported error ratio of variant "on" > 0.1 over 1m (min 20 evaluations)`
// ("every variant" when the variant is "", "error count" for the count measure,
// no minimum when it is 0).
export function describeGuardrail(g: GuardrailJson): string {
  const breach = `> ${g.threshold ?? 0} over ${describeDuration(g.window)}`;
  const e = g.sdkErrors;
  if (!e) return `${g.promql?.query ?? ""} ${breach}`;
  const what = e.measure === "SDK_ERRORS_MEASURE_COUNT" ? "error count" : "error ratio";
  const of = e.variant ? `variant ${JSON.stringify(e.variant)}` : "every variant";
  const min = Number(e.minEvaluations ?? 0) > 0 ? ` (min ${e.minEvaluations} evaluations)` : "";
  return `SDK-reported ${what} of ${of} ${breach}${min}`;
}

export type GuardrailKind = "promql" | "sdkErrors";

// GuardrailDraft is the new-plan form's guardrail as typed; variant "" means
// every variant of the flag.
export type GuardrailDraft = {
  kind: GuardrailKind;
  name: string;
  query: string;
  variant: string;
  measure: SdkErrorsMeasureJson;
  minEvaluations: string;
  threshold: string;
  window: string;
};

export const emptyGuardrail = (variant: string): GuardrailDraft => ({
  kind: "promql",
  name: "",
  query: "",
  variant,
  measure: "SDK_ERRORS_MEASURE_RATIO",
  minEvaluations: "0",
  threshold: "0",
  window: "5m",
});

// buildGuardrails turns the draft into the request's guardrails: none when it has
// no name. It throws naming the field that does not parse (the server checks ranges).
export function buildGuardrails(d: GuardrailDraft): GuardrailJson[] {
  if (!d.name.trim()) return [];
  const threshold = Number(d.threshold.trim());
  if (!d.threshold.trim() || !Number.isFinite(threshold)) throw new Error(`Breach above "${d.threshold}": want a number, e.g. 0.1`);
  const g: GuardrailJson = { name: d.name.trim(), threshold, window: parseWindow(d.window) };
  if (d.kind === "promql") return [{ ...g, promql: { query: d.query } }];
  const min = d.minEvaluations.trim() || "0";
  if (!/^\d+$/.test(min)) throw new Error(`Minimum evaluations "${d.minEvaluations}": want a whole number >= 0`);
  return [{ ...g, sdkErrors: { variant: d.variant, measure: d.measure, minEvaluations: min } }];
}

// fieldIs reports whether the server's field (snake_case over gRPC, camelCase over
// REST, e.g. guardrails[0].sdkErrors.variant) names want.
export function fieldIs(field: string, want: string): boolean {
  const norm = (s: string) => s.replace(/_/g, "").toLowerCase();
  return norm(field) === norm(want);
}
