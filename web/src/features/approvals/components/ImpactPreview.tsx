import { ErrorMessage } from "../../../components/ErrorMessage";
import { card } from "../../../components/ui";
import type { FlagImpactJson } from "../../../gen/flagforge/admin/v1/impact_pb";
import { useChangeRequestImpact } from "../api/get-change-request-impact";

const variantName = (v?: string) => (v ? v : "the caller's default");
const n = (v?: string | number) => Number(v ?? 0);

function FlagImpact({ f, contexts }: { f: FlagImpactJson; contexts: number }) {
  const moves = (f.transitions ?? []).filter((t) => t.fromVariant !== t.toVariant);
  const stays = (f.transitions ?? []).filter((t) => t.fromVariant === t.toVariant);
  return (
    <div className="mt-3">
      <h3 className="font-semibold">
        {f.flag}: {n(f.changed)} of {contexts} decisions change
        {!f.direct && <span className="font-normal"> (through a segment or prerequisite)</span>}
      </h3>
      <table className="mt-1 text-sm">
        <caption className="text-left text-xs">Decisions of {f.flag}: variant served now → under the proposal</caption>
        <thead>
          <tr>
            <th scope="col" className="pr-4 text-left">Now</th>
            <th scope="col" className="pr-4 text-left">Proposed</th>
            <th scope="col" className="text-right">Contexts</th>
          </tr>
        </thead>
        <tbody>
          {[...moves, ...stays].map((t, i) => (
            <tr key={i} className={t.fromVariant !== t.toVariant ? "font-semibold" : ""}>
              <td className="pr-4">{variantName(t.fromVariant)}</td>
              <td className="pr-4">{variantName(t.toVariant)}{t.fromVariant === t.toVariant ? " (unchanged)" : ""}</td>
              <td className="text-right">{n(t.count)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {(f.examples ?? []).length > 0 && (
        <>
          <h4 className="mt-2 text-sm font-semibold">Examples</h4>
          <ul className="text-sm" aria-label={`Examples of changed decisions of ${f.flag}`}>
            {(f.examples ?? []).map((ex, i) => (
              <li key={i}>
                <code>{JSON.stringify(ex.context)}</code>: {variantName(ex.fromVariant)} → {variantName(ex.toVariant)}
                {" "}({ex.toReason}
                {ex.toRuleId ? `, rule ${ex.toRuleId}` : ""})
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

// ImpactPreview shows what the change request does to real traffic: the
// environment's seen contexts evaluated with the live and the proposed
// configuration by the same engine, the decisions that change (a matrix of
// variants), examples and the rule responsible, so reviewers approve effects.
export function ImpactPreview({ org, project, env, id }: { org: string; project: string; env: string; id: string }) {
  const q = useChangeRequestImpact(org, project, env, id);
  const im = q.data?.impact;
  const contexts = n(im?.contexts);
  return (
    <section className={card} aria-labelledby="impact-title">
      <h2 id="impact-title" className="text-lg font-semibold">
        Impact preview
      </h2>
      {q.error ? (
        <ErrorMessage error={q.error} />
      ) : !im ? (
        <p aria-busy="true">Evaluating the proposal over the seen contexts…</p>
      ) : contexts === 0 ? (
        <p className="text-sm">No contexts seen in {env} yet: evaluators report the contexts they evaluate with their usage counts.</p>
      ) : (
        <>
          <p className="text-sm" role="note">
            {n(im.changed)} decisions change over {contexts} contexts seen in {env} (evaluated with the live and the proposed configuration).
          </p>
          {(im.flags ?? []).map((f) => (
            <FlagImpact key={f.flag} f={f} contexts={contexts} />
          ))}
        </>
      )}
    </section>
  );
}
