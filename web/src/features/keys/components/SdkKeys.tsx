import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { Secret } from "../../../components/Secret";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { SdkKeyKindJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { useSearchParam } from "../../../lib/router";
import { useEnvironments } from "../../projects/api/list-environments";
import { useSdkKeys } from "../api/list-sdk-keys";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import { useCreateSdkKey, useRevokeSdkKey, useRotateSdkKey } from "../api/manage-sdk-key";

const kinds: Record<string, string> = {
  SDK_KEY_KIND_SERVER: "Server (backend services: full rules, streaming)",
  SDK_KEY_KIND_CLIENT: "Client (browsers and apps: client-visible flags, evaluated values only)",
};

// SdkKeys manages an environment's SDK keys: create (secret shown once), rotate
// with an overlap during which both keys work, revoke.
export default function SdkKeys({ org, project }: { org: string; project: string }) {
  const envs = useEnvironments(org, project);
  const [envParam, setEnv] = useSearchParam("env");
  const env = envParam || "production";
  const canRead = useCan(org, "sdk_key", "read", project, env);
  const can = useCan(org, "sdk_key", "write", project, env);
  const keys = useSdkKeys(org, project, env, canRead.allowed);
  const create = useCreateSdkKey(org, project, env);
  const rotate = useRotateSdkKey(org, project, env);
  const revoke = useRevokeSdkKey(org, project, env);
  const [name, setName] = useState("");
  const [kind, setKind] = useState<SdkKeyKindJson>("SDK_KEY_KIND_SERVER");
  const [shown, setShown] = useState<{ title: string; secret: string } | null>(null);
  const [confirming, setConfirming] = useState("");
  const [overlap, setOverlap] = useState(24);
  const [notice, setNotice] = useState("");

  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await create.mutateAsync({ name, kind });
    setShown({ title: `New SDK key “${r.key?.name ?? name}”`, secret: r.secret ?? "" });
    setName("");
  }
  const error = (canRead.allowed ? keys.error : null) ?? create.error ?? rotate.error ?? revoke.error;
  return (
    <section aria-labelledby="keys-title" className="flex flex-col gap-4">
      <div className="flex flex-wrap items-end gap-3">
        <h1 id="keys-title" className="mr-auto text-2xl font-bold">
          SDK keys
        </h1>
        <label className="flex flex-col gap-1">
          <span className={label}>Environment</span>
          <select className={input} value={env} onChange={(e) => { setEnv(e.target.value); setShown(null); }}>
            {(envs.data?.environments ?? [{ key: env }]).map((e) => (
              <option key={e.key} value={e.key}>
                {e.key}
              </option>
            ))}
          </select>
        </label>
      </div>
      {shown && <Secret title={shown.title} secret={shown.secret} onDone={() => setShown(null)} />}
      <form onSubmit={(e) => void submit(e).catch(() => {})} className={card} aria-label="New SDK key">
        <fieldset className="flex flex-wrap items-end gap-3" {...deniedProps(can, "key-denied")}>
        <legend className="sr-only">New SDK key in {env}</legend>
        <label className="flex flex-col gap-1">
          <span className={label}>Key name</span>
          <input className={input} required value={name} onChange={(e) => setName(e.target.value)} placeholder="checkout service" />
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>Kind</span>
          <select className={input} value={kind} onChange={(e) => setKind(e.target.value as SdkKeyKindJson)}>
            {Object.entries(kinds).map(([k, v]) => (
              <option key={k} value={k}>
                {v}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" className={btnPrimary} disabled={create.isPending || !can.allowed}>
          Create SDK key
        </button>
        <Denied can={can} id="key-denied" />
        </fieldset>
      </form>
      {!canRead.allowed && (
        <p className="text-sm" data-testid="denied-reason">
          <span aria-hidden="true">🔒 </span>The SDK keys of {env} are not listed: {canRead.reason}
        </p>
      )}
      <ErrorMessage error={error} />
      <p role="status" className="text-sm">{notice}</p>
      <table className="w-full border-collapse text-sm">
        <caption className="sr-only">SDK keys of {env}</caption>
        <thead>
          <tr className="border-b border-slate-400 text-left">
            <th scope="col" className="py-2 pr-3">Name</th>
            <th scope="col" className="py-2 pr-3">Kind</th>
            <th scope="col" className="py-2 pr-3">Starts with</th>
            <th scope="col" className="py-2 pr-3">Created (UTC)</th>
            <th scope="col" className="py-2 pr-3">State</th>
            <th scope="col" className="py-2 pr-3">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(keys.data?.keys ?? []).map((k) => {
            const revoked = !!k.revokeTime;
            return (
              <tr key={k.id} className="border-b border-slate-200 dark:border-slate-800">
                <th scope="row" className="py-2 pr-3 text-left font-normal">{k.name}</th>
                <td className="py-2 pr-3">{k.kind === "SDK_KEY_KIND_CLIENT" ? "client" : "server"}</td>
                <td className="py-2 pr-3 font-mono">{k.prefix}…</td>
                <td className="py-2 pr-3">{(k.createTime ?? "").slice(0, 19).replace("T", " ")}</td>
                <td className="py-2 pr-3">{revoked ? "revoked" : k.expireTime ? `rotating out, works until ${k.expireTime.slice(0, 16).replace("T", " ")}` : "active"}</td>
                <td className="flex flex-wrap gap-1 py-2 pr-3">
                  {!revoked && (
                    <button
                      type="button"
                      className={btn}
                      disabled={rotate.isPending}
                      onClick={() =>
                        rotate.mutate(
                          { keyId: k.id ?? "", overlapSeconds: overlap * 3600 },
                          { onSuccess: (r) => setShown({ title: `Rotated key “${k.name}”: the new secret`, secret: r.secret ?? "" }) },
                        )
                      }
                    >
                      Rotate<span className="sr-only"> {k.name}</span>
                    </button>
                  )}
                  {!revoked &&
                    (confirming === k.id ? (
                      <button
                        type="button"
                        className={btnDanger}
                        onClick={() =>
                          revoke.mutate(k.id ?? "", { onSuccess: () => { setConfirming(""); setNotice(`Key “${k.name}” revoked: evaluators refuse it from the next manifest.`); } })
                        }
                      >
                        Confirm revoke<span className="sr-only"> {k.name}</span>
                      </button>
                    ) : (
                      <button type="button" className={btn} onClick={() => setConfirming(k.id ?? "")}>
                        Revoke<span className="sr-only"> {k.name}</span>
                      </button>
                    ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <label className="flex items-center gap-2 text-sm">
        <span>When rotating, keep the old key working for</span>
        <input type="number" min={0} className={`${input} w-20`} value={overlap} onChange={(e) => setOverlap(Math.max(0, Number(e.target.value) || 0))} />
        <span>hours</span>
      </label>
      <p className="text-sm">
        Server keys go in backend services (the Go SDK, OpenFeature providers, <code>/v1/evaluate</code>); client keys in browsers and
        mobile apps, which only see flags marked client-visible.
      </p>
    </section>
  );
}
