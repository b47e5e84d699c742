import { ErrorMessage } from "../../../components/ErrorMessage";
import { card, input, label } from "../../../components/ui";
import { useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useContextPolicy, useSeenContexts } from "../api/list-seen-contexts";

// SeenContexts lists the contexts evaluators and SDKs sampled in an environment
// (newest first): what impact previews evaluate proposals over. Private
// attributes never reach the control plane; the page says which they are.
export default function SeenContexts({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const env = envParam || "production";
  const q = useSeenContexts(org, project, env);
  const policy = useContextPolicy(org, project);
  const privateAttrs = policy.data?.policy?.privateAttributes ?? [];
  const contexts = q.data?.contexts ?? [];
  return (
    <section aria-labelledby="contexts-title" className="flex flex-col gap-4">
      <div className="flex flex-wrap items-end gap-3">
        <h1 id="contexts-title" className="mr-auto text-2xl font-bold">
          Seen contexts
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Environment</span>
          <select className={input} value={env} onChange={(e) => setEnv(e.target.value)}>
            {(envs.data?.environments ?? [{ key: env }]).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
              </option>
            ))}
          </select>
        </label>
      </div>
      <p className="text-sm">
        Private attributes (removed before a context leaves the evaluator or SDK):{" "}
        {privateAttrs.length ? privateAttrs.join(", ") : "none"}.
      </p>
      <ErrorMessage error={q.error ?? policy.error} />
      <div className={card}>
        {!q.data ? (
          <p aria-busy="true">Loading seen contexts…</p>
        ) : (
          <table className="w-full text-sm">
            <caption className="text-left">
              {Number(q.data.total ?? 0)} contexts seen in {env}
              {contexts.length < Number(q.data.total ?? 0) ? ` (the ${contexts.length} most recent shown)` : ""}
            </caption>
            <thead>
              <tr>
                <th scope="col" className="pr-4 text-left">Last seen</th>
                <th scope="col" className="text-left">Attributes</th>
              </tr>
            </thead>
            <tbody>
              {contexts.map((c) => (
                <tr key={c.digest}>
                  <td className="pr-4 align-top whitespace-nowrap">{c.lastSeenTime ? new Date(c.lastSeenTime).toLocaleString() : ""}</td>
                  <td>
                    <code>{JSON.stringify(c.attributes)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </div>
    </section>
  );
}
