import type { ReleaseStepJson } from "../../../gen/flagforge/admin/v1/release_plan_pb";

// parseSteps reads the notation the docs and the CLI use, "1%/1h, 5%/4h, 25%/1d,
// 100%": each step serves variant to that share (weights in hundredths of a
// percent, the rest to rest) for at least the duration. It throws naming the step.
export function parseSteps(spec: string, variant: string, rest: string): ReleaseStepJson[] {
  if (!spec.trim()) throw new Error("Steps are required, e.g. 1%/1h, 5%/4h, 25%/1d, 100%");
  return spec.split(",").map((part, i) => {
    const [pct, dur] = part.trim().split("/");
    const p = Number(pct.trim().replace(/%$/, ""));
    if (!pct.trim() || Number.isNaN(p) || p < 0 || p > 100) throw new Error(`Step ${i + 1} "${part.trim()}": want a percentage between 0% and 100%`);
    const on = Math.round(p * 100);
    const step: ReleaseStepJson = { weights: [{ variant, weight: on }] };
    if (on < 10000) step.weights?.push({ variant: rest, weight: 10000 - on });
    if (dur?.trim()) step.minDuration = `${seconds(dur.trim(), i)}s`;
    return step;
  });
}

const units: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

function seconds(d: string, i: number): number {
  const m = /^(\d+)([smhd])$/.exec(d);
  if (!m) throw new Error(`Step ${i + 1}: duration "${d}": want e.g. 30m, 4h or 1d`);
  return Number(m[1]) * units[m[2]];
}

// parseWindow reads "5m" as the API's "300s"; it throws naming what is wrong.
export function parseWindow(d: string): string {
  const m = /^(\d+)([smhd])$/.exec(d.trim());
  if (!m) throw new Error(`Window "${d}": want e.g. 30s, 5m or 1h`);
  return `${Number(m[1]) * units[m[2]]}s`;
}

// describeDuration renders "3600s" as "1h" (the API's JSON form of a duration).
export function describeDuration(d?: string): string {
  const s = Number((d ?? "0s").replace(/s$/, ""));
  if (!s) return "";
  for (const [u, n] of [["d", 86400], ["h", 3600], ["m", 60]] as const) if (s % n === 0) return `${s / n}${u}`;
  return `${s}s`;
}

// describeStep renders a step's distribution: "5% on / 95% off".
export function describeStep(st: ReleaseStepJson): string {
  const total = (st.weights ?? []).reduce((a, w) => a + (w.weight ?? 0), 0);
  if (!total) return "";
  return (st.weights ?? []).map((w) => `${Math.round(((w.weight ?? 0) * 10000) / total) / 100}% ${w.variant}`).join(" / ");
}
