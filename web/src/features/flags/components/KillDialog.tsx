import { useRef, useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, input, label } from "../../../components/ui";
import { useEmergencyOff } from "../api/emergency-off";
import { useKillFlag } from "../api/kill-flag";
import type { Can } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

const allowed: Can = { allowed: true, reason: "", loading: false };

// KillDialog turns a flag off in every environment of its project: the user states
// the reason and types the flag's key to confirm.
export function KillDialog({ org, project, flag, envCount, can = allowed }: { org: string; project: string; flag: string; envCount: number; can?: Can }) {
  const ref = useRef<HTMLDialogElement>(null);
  const kill = useKillFlag(org, project, flag);
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  const [done, setDone] = useState("");
  async function submit(e: FormEvent) {
    e.preventDefault();
    const r = await kill.mutateAsync(reason);
    setDone(`${flag} is off in ${r.configs?.length ?? 0} environments.`);
    ref.current?.close();
  }
  return (
    <>
      <button type="button" className={btnDanger} {...deniedProps(can, "kill-denied")} onClick={() => { kill.reset(); ref.current?.showModal(); }}>
        Kill everywhere
      </button>
      <Denied can={can} id="kill-denied" />
      <p role="status" className="text-sm">{done}</p>
      <dialog ref={ref} aria-labelledby="kill-title" className="m-auto max-w-lg rounded-lg p-0 backdrop:bg-black/50">
        <form onSubmit={(e) => void submit(e).catch(() => {})} className="flex flex-col gap-3 bg-white p-5 text-slate-900 dark:bg-slate-900 dark:text-slate-100">
          <h2 id="kill-title" className="text-lg font-bold">
            Kill {flag} everywhere?
          </h2>
          <p className="text-sm">
            This turns <strong>{flag}</strong> off in all {envCount} environments of the project at once, without
            approval. Every evaluator serves its off variant within seconds.
          </p>
          <label className="flex flex-col gap-1">
            <span className={label}>Reason (recorded in the audit log)</span>
            <textarea className={input} required value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Type the flag key ({flag}) to confirm</span>
            <input className={input} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
          </label>
          <ErrorMessage error={kill.error} />
          <div className="flex justify-end gap-2">
            <button type="button" className={btn} onClick={() => ref.current?.close()}>
              Cancel
            </button>
            <button type="submit" className={btnDanger} disabled={typed !== flag || !reason.trim() || kill.isPending}>
              Turn off everywhere
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}

// EmergencyOffDialog turns a flag off in one environment without waiting for
// approval (where the environment allows it), with a reason, confirmed by typing
// the environment's key.
export function EmergencyOffDialog({ org, project, flag, env, onDone, can = allowed }: { org: string; project: string; flag: string; env: string; onDone: () => void; can?: Can }) {
  const ref = useRef<HTMLDialogElement>(null);
  const off = useEmergencyOff(org, project, env, flag);
  const [reason, setReason] = useState("");
  const [typed, setTyped] = useState("");
  async function submit(e: FormEvent) {
    e.preventDefault();
    await off.mutateAsync(reason);
    ref.current?.close();
    onDone();
  }
  return (
    <>
      <button type="button" className={btnDanger} {...deniedProps(can, "emergency-denied")} onClick={() => { off.reset(); ref.current?.showModal(); }}>
        Emergency off in {env}
      </button>
      <Denied can={can} id="emergency-denied" />
      <dialog ref={ref} aria-labelledby="eoff-title" className="m-auto max-w-lg rounded-lg p-0 backdrop:bg-black/50">
        <form onSubmit={(e) => void submit(e).catch(() => {})} className="flex flex-col gap-3 bg-white p-5 text-slate-900 dark:bg-slate-900 dark:text-slate-100">
          <h2 id="eoff-title" className="text-lg font-bold">
            Turn {flag} off in {env} now?
          </h2>
          <p className="text-sm">
            Emergency off skips approvals; it is audited and should be reviewed afterwards. Every evaluator serves the
            off variant within seconds.
          </p>
          <label className="flex flex-col gap-1">
            <span className={label}>Reason (recorded in the audit log)</span>
            <textarea className={input} required value={reason} onChange={(e) => setReason(e.target.value)} />
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Type the environment ({env}) to confirm</span>
            <input className={input} value={typed} onChange={(e) => setTyped(e.target.value)} autoComplete="off" />
          </label>
          <ErrorMessage error={off.error} />
          <div className="flex justify-end gap-2">
            <button type="button" className={btn} onClick={() => ref.current?.close()}>
              Cancel
            </button>
            <button type="submit" className={btnDanger} disabled={typed !== env || !reason.trim() || off.isPending}>
              Turn off in {env}
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
