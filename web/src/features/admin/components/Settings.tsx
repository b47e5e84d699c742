import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { Secret } from "../../../components/Secret";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { EnvironmentJson } from "../../../gen/flagforge/admin/v1/environment_pb";
import { ApiError } from "../../../lib/api";
import { useEnvironments } from "../../projects/api/list-environments";
import { useCreateApiToken, useApiTokens, useRevokeApiToken } from "../api/api-tokens";
import { useMembers } from "../api/list-members";
import { Members } from "./Members";
import { useUpdateEnvironment } from "../api/update-environment";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

function EnvironmentSettings({ org, project, env }: { org: string; project: string; env: EnvironmentJson }) {
  const update = useUpdateEnvironment(org, project);
  const s = env.settings ?? {};
  const [approvals, setApprovals] = useState(!!s.approvalsRequired);
  const [required, setRequired] = useState(s.requiredApprovals ?? 1);
  const [emergency, setEmergency] = useState(s.emergencyOffAllowed ?? true);
  const [notice, setNotice] = useState("");
  const key = env.key ?? "";
  const can = useCan(org, "environment", "write", project, key);
  const field = update.error instanceof ApiError ? update.error.field ?? "" : "";
  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await update.mutateAsync({ env: key, revision: env.revision ?? "0", settings: { approvalsRequired: approvals, requiredApprovals: required, emergencyOffAllowed: emergency } });
    setNotice(r.changeRequest ? `Loosening ${key}'s approvals needs review: change request ${r.changeRequest.id} was created.` : `Saved ${key}.`);
  }
  return (
    <form onSubmit={(e) => void submit(e).catch(() => {})} className="border-t border-slate-200 py-3 dark:border-slate-800" aria-label={`Settings of ${key}`}>
      <fieldset className="flex flex-wrap items-center gap-4" {...deniedProps(can, `env-denied-${key}`)}>
      <legend className="sr-only">Approval settings of {key}</legend>
      <span className="w-28 font-semibold">{env.name || key}</span>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={approvals} onChange={(e) => setApprovals(e.target.checked)} />
        {`Changes in ${key} need approval`}
      </label>
      <label className="flex items-center gap-2 text-sm">
        <span>{`Approvals needed in ${key}`}</span>
        <input type="number" min={1} max={10} className={`${input} w-16`} value={required} aria-invalid={field.includes("required_approvals") || undefined} onChange={(e) => setRequired(Math.max(1, Number(e.target.value) || 1))} />
      </label>
      <label className="flex items-center gap-2 text-sm">
        <input type="checkbox" checked={emergency} onChange={(e) => setEmergency(e.target.checked)} />
        {`Emergency off allowed in ${key}`}
      </label>
      <button type="submit" className={btn} disabled={update.isPending || !can.allowed}>
        Save {key}
      </button>
      <span role="status" className="text-sm">{notice}</span>
      <Denied can={can} id={`env-denied-${key}`} />
      </fieldset>
      <ErrorMessage error={update.error} />
    </form>
  );
}

// Settings is the administration of a project and its organization: environments'
// approval settings, members and their roles, API tokens (secret shown once).
export default function Settings({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const members = useMembers(org);
  const canTokens = useCan(org, "api_token", "write");
  const canReadTokens = useCan(org, "api_token", "read");
  const tokens = useApiTokens(org, canReadTokens.allowed);
  const createToken = useCreateApiToken(org);
  const revokeToken = useRevokeApiToken(org);
  const [tokenName, setTokenName] = useState("");
  const [tokenMember, setTokenMember] = useState("");
  const [shown, setShown] = useState<{ title: string; secret: string } | null>(null);
  const [confirming, setConfirming] = useState("");
  const emailOf = (id?: string) => members.data?.members?.find((m) => m.id === id)?.email ?? id ?? "";
  return (
    <div className="flex flex-col gap-6">
      <h1 className="text-2xl font-bold">Settings</h1>
      <section className={card} aria-labelledby="env-title">
        <h2 id="env-title" className="mb-2 text-lg font-semibold">
          Environments of {project}
        </h2>
        <p className="mb-2 text-sm">Where changes need approval, saving a flag creates a change request that another member must approve. Loosening a protected environment is itself reviewed.</p>
        <ErrorMessage error={envs.error} />
        {(envs.data?.environments ?? []).map((e) => (
          <EnvironmentSettings key={e.key} org={org} project={project} env={e} />
        ))}
      </section>
      <Members org={org} project={project} />
      <section className={card} aria-labelledby="tokens-title">
        <h2 id="tokens-title" className="mb-2 text-lg font-semibold">
          API tokens
        </h2>
        {shown && <Secret title={shown.title} secret={shown.secret} onDone={() => setShown(null)} />}
        <form
          className="my-3"
          aria-label="New API token"
          onSubmit={(e) => {
            e.preventDefault();
            createToken.mutate({ name: tokenName, memberId: tokenMember }, { onSuccess: (r) => { setShown({ title: `New API token “${r.token?.name ?? tokenName}”`, secret: r.secret ?? "" }); setTokenName(""); } });
          }}
        >
          <fieldset className="flex flex-wrap items-end gap-3" {...deniedProps(canTokens, "token-denied")}>
          <legend className="sr-only">New API token</legend>
          <label className="flex flex-col gap-1">
            <span className={label}>Token name</span>
            <input className={input} required value={tokenName} onChange={(e) => setTokenName(e.target.value)} />
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Acts as</span>
            <select className={input} value={tokenMember} onChange={(e) => setTokenMember(e.target.value)}>
              <option value="">me</option>
              {(members.data?.members ?? []).map((m) => (
                <option key={m.id} value={m.id}>
                  {m.email || m.name}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className={btnPrimary} disabled={createToken.isPending || !canTokens.allowed}>
            Create API token
          </button>
          <Denied can={canTokens} id="token-denied" />
          </fieldset>
        </form>
        {!canReadTokens.allowed && (
          <p className="text-sm" data-testid="denied-reason">
            <span aria-hidden="true">🔒 </span>The API tokens are not listed: {canReadTokens.reason}
          </p>
        )}
        <ErrorMessage error={(canReadTokens.allowed ? tokens.error : null) ?? createToken.error ?? revokeToken.error} />
        <table className="w-full text-sm">
          <caption className="sr-only">API tokens</caption>
          <thead>
            <tr className="text-left">
              <th scope="col">Name</th>
              <th scope="col">Acts as</th>
              <th scope="col">Created (UTC)</th>
              <th scope="col">Last used (UTC)</th>
              <th scope="col">State</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {(tokens.data?.tokens ?? []).map((t) => (
              <tr key={t.id} className="border-t border-slate-200 dark:border-slate-800">
                <th scope="row" className="py-1 text-left font-normal">{t.name}</th>
                <td>{emailOf(t.memberId)}</td>
                <td>{(t.createTime ?? "").slice(0, 16).replace("T", " ")}</td>
                <td>{t.lastUsedTime ? t.lastUsedTime.slice(0, 16).replace("T", " ") : "never"}</td>
                <td>{t.revokeTime ? "revoked" : t.expireTime ? `expires ${t.expireTime.slice(0, 10)}` : "active"}</td>
                <td>
                  {!t.revokeTime &&
                    (confirming === t.id ? (
                      <button type="button" className={btnDanger} onClick={() => revokeToken.mutate(t.id ?? "", { onSuccess: () => setConfirming("") })}>
                        Confirm revoke<span className="sr-only"> token {t.name}</span>
                      </button>
                    ) : (
                      <button type="button" className={btn} onClick={() => setConfirming(t.id ?? "")}>
                        Revoke<span className="sr-only"> token {t.name}</span>
                      </button>
                    ))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
    </div>
  );
}
