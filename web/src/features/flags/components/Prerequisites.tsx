import { btn, input } from "../../../components/ui";
import type { PrerequisiteJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { useFlags } from "../api/list-flags";

// Prerequisites edits the flags that must serve given variants (in the same
// environment, for the same context) before this flag's targeting runs. The
// server refuses cycles and unknown flags, naming the field.
export function Prerequisites({ org, project, flag, value, onChange, errField }: {
  org: string; project: string; flag: string; value: PrerequisiteJson[]; onChange: (p: PrerequisiteJson[]) => void; errField: string;
}) {
  const flags = useFlags(org, project);
  const others = (flags.data ?? []).filter((f) => f.key !== flag);
  const variantsOf = (key?: string) => (flags.data ?? []).find((f) => f.key === key)?.variants?.map((v) => v.key ?? "") ?? [];
  const set = (i: number, p: PrerequisiteJson) => onChange(value.map((x, j) => (j === i ? p : x)));
  return (
    <div className="flex flex-col gap-2">
      {value.length === 0 && <p className="text-sm">None: no other flag has to serve anything first.</p>}
      {value.map((p, i) => (
        <div key={i} className="flex flex-wrap items-center gap-2">
          <label className="flex items-center gap-2 text-sm">
            <span>{`Prerequisite ${i + 1} flag`}</span>
            <select
              className={input}
              value={p.flagKey ?? ""}
              aria-invalid={errField.startsWith(`config.prerequisites[${i}]`) || undefined}
              onChange={(e) => set(i, { flagKey: e.target.value, variants: variantsOf(e.target.value).slice(0, 1) })}
            >
              <option value="" disabled>
                choose…
              </option>
              {others.map((f) => (
                <option key={f.key} value={f.key}>
                  {f.key}
                </option>
              ))}
            </select>
          </label>
          <fieldset className="flex items-center gap-2 text-sm">
            <legend className="sr-only">{`Prerequisite ${i + 1} must serve`}</legend>
            <span aria-hidden="true">must serve</span>
            {variantsOf(p.flagKey).map((v) => (
              <label key={v} className="flex items-center gap-1">
                <input
                  type="checkbox"
                  checked={(p.variants ?? []).includes(v)}
                  onChange={(e) => set(i, { ...p, variants: e.target.checked ? [...(p.variants ?? []), v] : (p.variants ?? []).filter((x) => x !== v) })}
                />
                {v}
              </label>
            ))}
          </fieldset>
          <button type="button" className={btn} onClick={() => onChange(value.filter((_, j) => j !== i))}>
            Remove prerequisite {i + 1}
          </button>
        </div>
      ))}
      <button type="button" className={`${btn} self-start`} onClick={() => onChange([...value, { flagKey: "", variants: [] }])}>
        Add prerequisite
      </button>
    </div>
  );
}
