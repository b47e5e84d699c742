import { useFlagUsage } from "../api/get-flag-usage";
import { percent } from "./format";

// Usage shows how often the flag was evaluated in the environment in the last
// hour: the total, the share of each variant, and a per-minute sparkline.
export function Usage({ org, project, env, flag }: { org: string; project: string; env: string; flag: string }) {
  const u = useFlagUsage(org, project, env, flag);
  const buckets = u.data?.buckets ?? [];
  const total = Number(u.data?.total ?? 0);
  const byVariant = new Map<string, number>();
  const perMinute = new Map<number, number>();
  for (const b of buckets) {
    const n = Number(b.count ?? 0);
    byVariant.set(b.variant ?? "", (byVariant.get(b.variant ?? "") ?? 0) + n);
    const m = Math.floor(new Date(b.minute ?? 0).getTime() / 60000);
    perMinute.set(m, (perMinute.get(m) ?? 0) + n);
  }
  const now = Math.floor(Date.now() / 60000);
  const series = Array.from({ length: 60 }, (_, i) => perMinute.get(now - 59 + i) ?? 0);
  const max = Math.max(1, ...series);
  const shares = [...byVariant.entries()].map(([v, n]) => `${v || "default"} ${percent(n, total)}`).join(", ");
  return (
    <div className="flex flex-wrap items-center gap-3 text-sm">
      <span data-testid="usage-total">
        Evaluations in {env}, last hour: {total.toLocaleString("en-US")}
        {total > 0 ? ` (${shares})` : " — no SDK asked for this flag in the last hour"}
      </span>
      <svg width="180" height="24" viewBox="0 0 180 24" role="img" aria-label={`Evaluations per minute in ${env} over the last hour, at most ${max}`}>
        {series.map((n, i) => (
          <rect key={i} x={i * 3} y={24 - (n / max) * 24} width="2" height={(n / max) * 24} className="fill-blue-700" />
        ))}
      </svg>
    </div>
  );
}
