import { btn, input, label } from "../../../components/ui";
import type { ServeJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { percent } from "./format";

// ServeEditor picks one variant or a percentage rollout. Weights are relative
// integers; the share of each is shown as a percentage of their total.
export function ServeEditor({ name, serve, variants, onChange, path, errField }: {
  name: string; serve?: ServeJson; variants: string[]; onChange: (s: ServeJson) => void; path: string; errField: string;
}) {
  const isRollout = !!serve?.rollout;
  const weights = serve?.rollout?.weights ?? [];
  const total = weights.reduce((a, w) => a + (w.weight ?? 0), 0);
  const weightOf = (v: string) => weights.find((w) => w.variant === v)?.weight ?? 0;
  const setWeight = (v: string, n: number) => {
    const next = variants.map((k) => ({ variant: k, weight: k === v ? n : weightOf(k) }));
    onChange({ rollout: { ...serve?.rollout, weights: next } });
  };
  const invalid = (p: string) => (errField && errField.startsWith(p) ? true : undefined);
  return (
    <div className="flex flex-col gap-2">
      <label className="flex items-center gap-2">
        <span className={label}>{name}</span>
        <select
          className={input}
          value={isRollout ? "__rollout" : serve?.variant ?? ""}
          aria-invalid={invalid(`${path}.variant`)}
          onChange={(e) => {
            const v = e.target.value;
            if (v === "__rollout") {
              const even = Math.floor(100 / Math.max(variants.length, 1));
              onChange({ rollout: { weights: variants.map((k, i) => ({ variant: k, weight: i === 0 ? 100 - even * (variants.length - 1) : even })) } });
            } else onChange({ variant: v });
          }}
        >
          <option value="" disabled>
            choose…
          </option>
          {variants.map((v) => (
            <option key={v} value={v}>
              {v}
            </option>
          ))}
          <option value="__rollout">a percentage rollout</option>
        </select>
      </label>
      {isRollout && (
        <fieldset className="rounded border border-slate-300 p-2 dark:border-slate-700">
          <legend className="px-1 text-sm font-medium">{name}: rollout</legend>
          <div className="mb-2 flex h-4 w-full overflow-hidden rounded bg-slate-200" aria-hidden="true">
            {variants.map((v, i) => (
              <div key={v} className={i % 2 ? "bg-slate-500" : "bg-blue-700"} style={{ width: total ? `${(weightOf(v) * 100) / total}%` : 0 }} />
            ))}
          </div>
          <div className="flex flex-wrap gap-4">
            {variants.map((v) => (
              <label key={v} className="flex items-center gap-2 text-sm">
                <span>{`${name}: weight of ${v}`}</span>
                <input
                  type="number"
                  min={0}
                  step={1}
                  className={`${input} w-24`}
                  value={weightOf(v)}
                  aria-invalid={invalid(`${path}.rollout.weights`)}
                  onChange={(e) => setWeight(v, Math.max(0, Math.trunc(Number(e.target.value) || 0)))}
                />
                <output className="tabular-nums">{percent(weightOf(v), total)}</output>
              </label>
            ))}
            <button
              type="button"
              className={btn}
              onClick={() => onChange({ rollout: { ...serve?.rollout, weights: variants.map((k) => ({ variant: k, weight: 1 })) } })}
            >
              Split evenly
            </button>
          </div>
          <p className="mt-2 text-xs text-slate-700 dark:text-slate-300">
            Weights are relative: each variant gets its weight divided by the total ({total}). Users are bucketed by{" "}
            <label className="inline-flex items-center gap-1">
              <span className="sr-only">{`${name}: bucket by`}</span>
              <input
                className={`${input} w-32`}
                value={serve?.rollout?.bucketBy ?? ""}
                placeholder="targetingKey"
                onChange={(e) => onChange({ rollout: { ...serve?.rollout, weights, bucketBy: e.target.value } })}
              />
            </label>{" "}
            (changing it, or the seed, reshuffles users).
          </p>
        </fieldset>
      )}
    </div>
  );
}
