import { ErrorMessage } from "../../../components/ErrorMessage";
import { input, label } from "../../../components/ui";
import type { SdkErrorsMeasureJson } from "../../../gen/flagforge/admin/v1/release_plan_pb";
import { fieldIs, type GuardrailDraft, type GuardrailKind } from "./guardrails";

const errorId = "np-guardrail-error";

// GuardrailFields edits the new plan's guardrail: a PromQL query against the
// configured Prometheus, or the errors SDKs report for a variant of the flag (or
// every variant). A server error naming one of its fields (e.g.
// guardrails[0].sdkErrors.variant) is shown here and marks that field invalid.
export function GuardrailFields({ draft, variants, error, field, onChange }: { draft: GuardrailDraft; variants: string[]; error: unknown; field: string; onChange: (d: GuardrailDraft) => void }) {
  const upd = (p: Partial<GuardrailDraft>) => onChange({ ...draft, ...p });
  const at = (...names: string[]) => {
    const bad = names.some((n) => fieldIs(field, `guardrails[0].${n}`));
    return { "aria-invalid": bad || undefined, "aria-describedby": bad ? errorId : undefined };
  };
  // The flag's variants, plus the one typed when the flag is not loaded (yet).
  const options = variants.includes(draft.variant) || draft.variant === "" ? variants : [draft.variant, ...variants];
  return (
    <fieldset className="flex flex-wrap items-end gap-3">
      <legend className={label}>Guardrail (optional)</legend>
      <label className="flex flex-col gap-1">
        <span className={label}>Guardrail name</span>
        <input className={input} value={draft.name} onChange={(e) => upd({ name: e.target.value })} {...at("name")} />
      </label>
      <label className="flex flex-col gap-1">
        <span className={label}>Guardrail kind</span>
        <select className={input} value={draft.kind} onChange={(e) => upd({ kind: e.target.value as GuardrailKind })} {...at("promql", "sdkErrors")}>
          <option value="promql">PromQL (the configured Prometheus)</option>
          <option value="sdkErrors">SDK-reported errors</option>
        </select>
      </label>
      {draft.kind === "promql" ? (
        <label className="flex grow flex-col gap-1">
          <span className={label}>PromQL ($window is the window)</span>
          <input className={`${input} font-mono`} value={draft.query} onChange={(e) => upd({ query: e.target.value })} {...at("promql.query", "promql")} />
        </label>
      ) : (
        <>
          <label className="flex flex-col gap-1">
            <span className={label}>Variant measured</span>
            <select className={input} value={draft.variant} onChange={(e) => upd({ variant: e.target.value })} {...at("sdkErrors.variant")}>
              {options.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
              <option value="">every variant</option>
            </select>
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Measure</span>
            <select className={input} value={draft.measure} onChange={(e) => upd({ measure: e.target.value as SdkErrorsMeasureJson })} {...at("sdkErrors.measure")}>
              <option value="SDK_ERRORS_MEASURE_RATIO">error ratio (errors / evaluations)</option>
              <option value="SDK_ERRORS_MEASURE_COUNT">error count</option>
            </select>
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Minimum evaluations</span>
            <input className={input} type="number" min={0} step={1} value={draft.minEvaluations} onChange={(e) => upd({ minEvaluations: e.target.value })} {...at("sdkErrors.minEvaluations")} />
          </label>
        </>
      )}
      <label className="flex flex-col gap-1">
        <span className={label}>Breach above</span>
        <input className={input} inputMode="decimal" value={draft.threshold} onChange={(e) => upd({ threshold: e.target.value })} {...at("threshold")} />
      </label>
      <label className="flex flex-col gap-1">
        <span className={label}>Window</span>
        <input className={input} value={draft.window} onChange={(e) => upd({ window: e.target.value })} {...at("window")} />
      </label>
      {draft.kind === "sdkErrors" && (
        <p className="w-full text-xs">
          Errors the server SDKs report for the flag (and evaluations that failed), per minute; below the minimum evaluations in the window the check holds.
        </p>
      )}
      {field.startsWith("guardrails") && (
        <div className="w-full">
          <ErrorMessage id={errorId} error={error} />
        </div>
      )}
    </fieldset>
  );
}
