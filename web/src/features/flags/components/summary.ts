import type { ClauseJson, RuleJson, ServeJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { operatorPhrase, percent } from "./format";

// One rule-summary renderer for the flag page, the playground and reviews.

export function valueText(v: unknown): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function clauseSummary(c: ClauseJson): string {
  const vals = (c.values ?? []).map(valueText).join(", ");
  if (c.operator === "OPERATOR_SEGMENT_MATCH") return `context is ${c.negate ? "not " : ""}in segment ${vals}`;
  const op = operatorPhrase(c.operator);
  return `${c.attribute ?? "?"} ${c.negate ? "not " : ""}${op}${op === "exists" ? "" : ` ${vals}`}`;
}

export function serveSummary(s?: ServeJson): string {
  if (!s) return "nothing";
  if (s.rollout) {
    const ws = s.rollout.weights ?? [];
    const total = ws.reduce((a, w) => a + (w.weight ?? 0), 0);
    return `rollout ${ws.map((w) => `${w.variant} ${percent(w.weight ?? 0, total)}`).join(" / ")}`;
  }
  return s.variant ?? "nothing";
}

export function ruleSummary(r: RuleJson): string {
  const cls = (r.clauses ?? []).map(clauseSummary);
  const cond = cls.length ? `If ${cls.join(" and ")}` : "For everyone";
  return `${r.disabled ? "Disabled (skipped): " : ""}${cond} → serve ${serveSummary(r.serve)}`;
}
