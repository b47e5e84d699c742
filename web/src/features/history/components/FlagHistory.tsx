import { useState } from "react";
import { DiffTable } from "../../../components/DiffTable";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnPrimary, card, input, label } from "../../../components/ui";
import type { RevisionJson } from "../../../gen/flagforge/admin/v1/history_pb";
import { Link } from "../../../lib/router";
import { useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import { useEnvironments } from "../../projects/api/list-environments";
import { useFlagRevisions, useRevertFlag, useRevisionDiff } from "../api/history";

const when = (t?: string) => (t ? `${t.slice(0, 19).replace("T", " ")} UTC` : "");
const who = (r: RevisionJson) => r.actorName || r.actorId || "system";

// FlagHistory is the flag page's History tab: every revision of the flag's
// configuration in one environment (who, when, why, the change request it
// applied), the diff of any two, and revert to one of them — a write like any
// other (a change request where the environment requires approvals).
export default function FlagHistory({ org, project, flag, env }: { org: string; project: string; flag: string; env: string }) {
  const envs = useEnvironments(org, project);
  const list = useFlagRevisions(org, project, env, flag);
  const revs = list.data?.revisions ?? [];
  const [fromPick, setFrom] = useState("");
  const [toPick, setTo] = useState("");
  // Unless picked: what the latest write changed (the one before it → the latest).
  const from = fromPick || revs[Math.min(1, revs.length - 1)]?.revision || "";
  const to = toPick || revs[0]?.revision || "";
  const diff = useRevisionDiff(org, project, env, flag, from, to);
  const revert = useRevertFlag(org, project, env, flag);
  const canRevert = useCan(org, "flag_config", "write", project, env);
  const [reverting, setReverting] = useState("");
  const [comment, setComment] = useState("");
  const [notice, setNotice] = useState<{ text: string; link?: string }>({ text: "" });
  const base = `/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}`;
  const current = revs[0]?.revision ?? "0";

  function doRevert(rev: string) {
    revert.mutate(
      { revision: rev, baseRevision: current, comment },
      {
        onSuccess: (r) => {
          setReverting("");
          setComment("");
          if (r.changeRequest) {
            setNotice({
              text: `${env} requires approval: change request ${r.changeRequest.id ?? ""} proposes reverting to revision ${rev}.`,
              link: `${base}/changes/${encodeURIComponent(env)}/${encodeURIComponent(r.changeRequest.id ?? "")}`,
            });
          } else {
            setNotice({ text: `Reverted ${flag} in ${env} to revision ${rev}'s configuration (now revision ${r.config?.revision ?? "?"}).` });
            setFrom("");
            setTo("");
          }
        },
      },
    );
  }

  return (
    <div className="flex flex-col gap-4">
      <div className="flex flex-wrap items-center gap-3">
        <h1 className="text-2xl font-bold">
          History of <span className="font-mono">{flag}</span> in {env}
        </h1>
        <Link className="ml-auto text-blue-800 underline dark:text-blue-300" href={`${base}/flags/${encodeURIComponent(flag)}/${encodeURIComponent(env)}`}>
          Targeting
        </Link>
        <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/rollback?env=${encodeURIComponent(env)}`}>
          Roll back the whole environment…
        </Link>
      </div>
      <nav aria-label="Environments">
        <ul className="flex gap-1 border-b border-slate-300 dark:border-slate-700">
          {(envs.data?.environments ?? []).map((e) => (
            <li key={e.key}>
              <Link
                href={`${base}/flags/${encodeURIComponent(flag)}/${encodeURIComponent(e.key ?? "")}/history`}
                aria-current={e.key === env ? "page" : undefined}
                className={`block rounded-t px-4 py-2 text-sm font-medium ${e.key === env ? "bg-blue-700 text-white" : "hover:bg-slate-200 dark:hover:bg-slate-800"}`}
              >
                {e.name || e.key}
                {e.settings?.approvalsRequired ? " (approvals)" : ""}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <ErrorMessage error={list.error} />
      <div role="status" className="text-sm">
        {notice.text}
        {notice.link && (
          <>
            {" "}
            <Link className="text-blue-800 underline dark:text-blue-300" href={notice.link}>
              Open the change request
            </Link>
          </>
        )}
      </div>
      <Denied can={canRevert} id="revert-denied" />
      <section className={card} aria-labelledby="revisions-title">
        <h2 id="revisions-title" className="mb-2 text-lg font-semibold">
          Revisions ({revs.length}), newest first
        </h2>
        {list.isPending ? (
          <p aria-busy="true">Loading revisions…</p>
        ) : (
          <div className="overflow-x-auto">
            <table className="w-full text-sm">
              <caption className="sr-only">Revisions of {flag} in {env}</caption>
              <thead>
                <tr className="text-left">
                  <th scope="col">Revision</th>
                  <th scope="col">When</th>
                  <th scope="col">Who</th>
                  <th scope="col">What</th>
                  <th scope="col">Why</th>
                  <th scope="col">Diff from</th>
                  <th scope="col">Diff to</th>
                  <th scope="col">
                    <span className="sr-only">Revert</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {revs.map((r) => {
                  const n = r.revision ?? "";
                  return (
                    <tr key={n} className="border-t border-slate-200 align-top dark:border-slate-800">
                      <td className="font-mono">
                        {n}
                        {n === current ? " (live)" : ""}
                      </td>
                      <td>{when(r.createTime)}</td>
                      <td>{who(r)}</td>
                      <td>
                        <code>{r.action}</code>
                        {r.changeRequestId && (
                          <>
                            {" "}
                            <Link className="text-blue-800 underline dark:text-blue-300" href={`${base}/changes/${encodeURIComponent(env)}/${encodeURIComponent(r.changeRequestId)}`}>
                              change request
                            </Link>
                          </>
                        )}
                      </td>
                      <td>{r.comment || "—"}</td>
                      <td>
                        <input type="radio" name="diff-from" aria-label={`Diff from revision ${n}`} checked={from === n} onChange={() => setFrom(n)} />
                      </td>
                      <td>
                        <input type="radio" name="diff-to" aria-label={`Diff to revision ${n}`} checked={to === n} onChange={() => setTo(n)} />
                      </td>
                      <td>
                        {n !== current &&
                          (reverting === n ? (
                            <div className="flex flex-wrap items-end gap-2">
                              <label className="flex flex-col gap-1">
                                <span className={label}>Why revert to {n}</span>
                                <input className={`${input} w-56`} value={comment} onChange={(e) => setComment(e.target.value)} />
                              </label>
                              <button type="button" className={btnPrimary} disabled={revert.isPending} onClick={() => doRevert(n)}>
                                Confirm revert to {n}
                              </button>
                              <button type="button" className={btn} onClick={() => setReverting("")}>
                                Cancel
                              </button>
                            </div>
                          ) : (
                            <button
                              type="button"
                              className={btn}
                              {...deniedProps(canRevert, "revert-denied")}
                              onClick={() => {
                                revert.reset();
                                setReverting(n);
                              }}
                            >
                              Revert to {n}…
                            </button>
                          ))}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
        <ErrorMessage error={revert.error} />
      </section>
      <section className={card} aria-labelledby="diff-title">
        <h2 id="diff-title" className="mb-2 text-lg font-semibold">
          Changes from revision {from || "?"} to {to || "?"}
        </h2>
        <ErrorMessage error={diff.error} />
        {from === to && from ? (
          <p className="text-sm">Pick two different revisions.</p>
        ) : diff.data ? (
          <DiffTable ops={diff.data.diff ?? []} caption={`Diff of revision ${from} to ${to}`} />
        ) : (
          from && to && <p aria-busy="true">Loading diff…</p>
        )}
      </section>
    </div>
  );
}
