import { useState } from "react";
import { DiffTable } from "../../../components/DiffTable";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { FlagConfigJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { useSearchParam } from "../../../lib/router";
import { useFlagConfig } from "../../flags/api/get-flag-config";
import { ruleSummary, serveSummary } from "../../flags/components/summary";
import { useChangeRequest } from "../api/get-change-request";
import { useRebaseChangeRequest, useReviewChangeRequest } from "../api/review-change-request";
import { stateLabel } from "./ChangeRequests";
import { ImpactPreview } from "./ImpactPreview";
import { useQuery } from "@tanstack/react-query";
import { permissionsOptions, useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";

// lines renders a flag configuration as the lines a reviewer reads.
function lines(c?: FlagConfigJson): string[] {
  if (!c) return [];
  return [
    `Flag is ${c.on ? "on" : "off"}; when off serve ${c.offVariant || "the caller's default"}`,
    ...(c.prerequisites ?? []).map((p) => `Prerequisite: ${p.flagKey} serves ${(p.variants ?? []).join(" or ")}`),
    ...(c.targets ?? []).map((t) => `Targets served ${t.variant}: ${(t.values ?? []).join(", ")}`),
    ...(c.rules ?? []).map((r, i) => `Rule ${i + 1} (${r.id}): ${ruleSummary(r)}`),
    `Otherwise serve ${serveSummary(c.defaultServe)}`,
  ];
}

function VisualDiff({ live, proposed }: { live?: FlagConfigJson; proposed?: FlagConfigJson }) {
  const a = lines(live);
  const b = lines(proposed);
  return (
    <div className="grid gap-3 md:grid-cols-2">
      <div>
        <h3 className="font-semibold">Live now</h3>
        <ul className="text-sm">
          {a.map((l, i) => (
            <li key={i} className={b.includes(l) ? "" : "bg-red-50 text-red-900 dark:bg-red-950 dark:text-red-100"}>
              {b.includes(l) ? "  " : "− "}
              {l}
              {!b.includes(l) && <span className="sr-only"> (removed)</span>}
            </li>
          ))}
        </ul>
      </div>
      <div>
        <h3 className="font-semibold">Proposed</h3>
        <ul className="text-sm" aria-label="Proposed configuration">
          {b.map((l, i) => (
            <li key={i} className={a.includes(l) ? "" : "bg-green-50 text-green-900 dark:bg-green-950 dark:text-green-100"}>
              {a.includes(l) ? "  " : "+ "}
              {l}
              {!a.includes(l) && <span className="sr-only"> (added)</span>}
            </li>
          ))}
        </ul>
      </div>
    </div>
  );
}

// ChangeRequestPage is the review of one change request: the proposal as a visual
// diff against what is live and as a JSON diff, the approvals bound to its content
// digest, the conversation, and the actions (approve, reject, comment, apply,
// withdraw). The server decides who may do what; its refusal (for example an
// author approving their own request) is shown with its reason.
export default function ChangeRequestPage({ org, project, env, id }: { org: string; project: string; env: string; id: string }) {
  const q = useChangeRequest(org, project, env, id);
  const cr = q.data?.changeRequest;
  const flag = cr?.change?.flagConfig?.flag ?? "";
  const live = useFlagConfig(org, project, env, flag || "-");
  const review = useReviewChangeRequest(org, project, env, id);
  const rebase = useRebaseChangeRequest(org, project, env, id);
  const [mode, setMode] = useSearchParam("view");
  const [comment, setComment] = useState("");
  // The diff line (JSON Pointer) the next comment is on; "" for the whole request.
  const [linePath, setLinePath] = useState("");
  const [notice, setNotice] = useState("");
  const can = useCan(org, "change_request", "write", project, env);
  const me = useQuery(permissionsOptions(org, project, env));
  if (q.error) return <ErrorMessage error={q.error} />;
  if (!cr) return <p aria-busy="true">Loading change request…</p>;
  const open = cr.state === "CHANGE_REQUEST_STATE_OPEN";
  const liveRevision = live.data?.config?.revision;
  const stale = open && !!cr.change?.flagConfig && !!liveRevision && liveRevision !== String(cr.baseRevision ?? "");
  const approvals = cr.approvals ?? [];
  const required = cr.requiredApprovals ?? 1;
  // Four eyes: the author may not approve their own request (the server refuses
  // it too); said before they try.
  const own = !!me.data?.memberId && me.data.memberId === cr.authorId;
  const canApprove = !can.allowed ? can : own ? { allowed: false, reason: "You wrote this change request: another member must approve it (four eyes). You may still comment, apply it once approved, or withdraw it.", loading: false } : can;
  const act = (a: Parameters<typeof review.mutate>[0], done: string) =>
    review.mutate(a, { onSuccess: () => { setNotice(done); setComment(""); setLinePath(""); } });
  const comments = cr.comments ?? [];
  const outdated = (c: (typeof comments)[number]) => !!c.path && !!c.contentDigest && c.contentDigest !== cr.contentDigest;
  const discussion = (op: { path?: string }) => {
    const on = comments.filter((c) => c.path === (op.path ?? ""));
    return (
      <div className="flex flex-col items-start gap-1">
        {on.map((c, i) => (
          <p key={i} className="text-xs">
            {c.memberId}: “{c.text}”{outdated(c) ? " (outdated: the proposal changed since)" : ""}
          </p>
        ))}
        <button
          type="button"
          className="text-xs text-blue-800 underline dark:text-blue-300"
          aria-label={`Comment on ${op.path || "(whole)"}`}
          onClick={() => {
            setLinePath(op.path ?? "");
            document.getElementById("review-comment")?.focus();
          }}
        >
          Comment
        </button>
      </div>
    );
  };
  return (
    <div className="flex flex-col gap-4">
      <div>
        <h1 className="text-2xl font-bold">
          Change request: {cr.change?.flagConfig ? `flag ${flag}` : `segment ${cr.change?.segment?.key ?? ""}`} in {env}
        </h1>
        <p className="text-sm">
          {stateLabel[String(cr.state)]} · by {cr.authorId} · based on revision {cr.baseRevision} · {approvals.length} of {required} approvals
        </p>
        {cr.description && <p className="mt-1">{cr.description}</p>}
      </div>
      {stale && (
        <div role="alert" className="flex flex-wrap items-center gap-2 rounded border border-red-700 bg-red-50 p-3 text-sm text-red-900 dark:bg-red-950 dark:text-red-100">
          {env} changed since this request was made (live revision {liveRevision}, request based on {cr.baseRevision}): Apply is blocked.
          The visual diff compares with what is live now. The author can rebase it onto the live revision; approvals are then given again.
          <button
            type="button"
            className={btn}
            disabled={rebase.isPending}
            onClick={() => rebase.mutate({ cr, baseRevision: liveRevision ?? "0" }, { onSuccess: () => setNotice(`Rebased onto revision ${liveRevision}; approvals were reset.`) })}
          >
            Rebase onto the live revision
          </button>
          <ErrorMessage error={rebase.error} />
        </div>
      )}
      <section className={card} aria-labelledby="changes-title">
        <div className="mb-2 flex items-center gap-2">
          <h2 id="changes-title" className="mr-auto text-lg font-semibold">
            Changes
          </h2>
          <button type="button" className={btn} aria-pressed={mode !== "json"} onClick={() => setMode("")}>
            Visual
          </button>
          <button type="button" className={btn} aria-pressed={mode === "json"} onClick={() => setMode("json")}>
            JSON
          </button>
        </div>
        {mode === "json" ? (
          <DiffTable ops={cr.diff ?? []} caption="Proposed changes as a JSON diff" line={discussion} />
        ) : cr.change?.flagConfig ? (
          <VisualDiff live={live.data?.config?.config} proposed={cr.change.flagConfig.config} />
        ) : (
          <DiffTable ops={cr.diff ?? []} caption="Proposed changes as a JSON diff" line={discussion} />
        )}
      </section>
      {!cr.change?.environmentSettings && <ImpactPreview org={org} project={project} env={env} id={id} />}
      <section className={card} aria-labelledby="review-title">
        <h2 id="review-title" className="mb-2 text-lg font-semibold">
          Review
        </h2>
        <ul className="mb-3 text-sm">
          {approvals.map((a, i) => (
            <li key={i}>
              Approved by {a.memberId}
              {a.comment ? `: “${a.comment}”` : ""}
            </li>
          ))}
          {comments.map((c, i) => (
            <li key={`c${i}`}>
              {c.memberId}
              {c.path ? ` on ${c.path}` : ""}: “{c.text}”{outdated(c) ? " (outdated)" : ""}
            </li>
          ))}
        </ul>
        <label className="flex flex-col gap-1">
          <span className={label}>{linePath ? `Comment on ${linePath}` : "Review comment"}</span>
          <textarea id="review-comment" className={`${input} h-16`} value={comment} onChange={(e) => setComment(e.target.value)} />
        </label>
        {linePath && (
          <button type="button" className="mt-1 self-start text-xs underline" onClick={() => setLinePath("")}>
            Comment on the whole request instead
          </button>
        )}
        <p className="mt-2 text-xs">
          Approving signs this exact content (digest <code>{(cr.contentDigest ?? "").slice(0, 12)}</code>); any later edit resets approvals.
        </p>
        <div className="mt-2 flex flex-wrap gap-2">
          <button type="button" className={btnPrimary} {...deniedProps(canApprove, can.allowed ? "approve-denied" : "review-denied")} disabled={!canApprove.allowed || !open || review.isPending} onClick={() => act({ kind: "approve", contentDigest: cr.contentDigest ?? "", comment }, "You approved this change request.")}>
            Approve
          </button>
          <button type="button" className={btnDanger} {...deniedProps(can, "review-denied")} disabled={!can.allowed || !open || review.isPending} onClick={() => act({ kind: "reject", comment }, "You rejected this change request.")}>
            Reject
          </button>
          <button type="button" className={btn} {...deniedProps(can, "review-denied")} disabled={!can.allowed || !comment.trim() || review.isPending} onClick={() => act({ kind: "comment", text: comment, path: linePath }, linePath ? `Comment added on ${linePath}.` : "Comment added.")}>
            Comment
          </button>
          <button
            type="button"
            className={btnPrimary}
            {...deniedProps(can, "review-denied")}
            disabled={!can.allowed || !open || stale || approvals.length < required || review.isPending}
            title={!can.allowed ? can.reason : approvals.length < required ? `Needs ${required - approvals.length} more approval(s)` : undefined}
            onClick={() => act({ kind: "apply" }, "Applied: the change is live.")}
          >
            Apply
          </button>
          <button type="button" className={btn} {...deniedProps(can, "review-denied")} disabled={!can.allowed || !open || review.isPending} onClick={() => act({ kind: "withdraw" }, "Withdrawn.")}>
            Withdraw
          </button>
        </div>
        {can.allowed ? open && <Denied can={canApprove} id="approve-denied" /> : <Denied can={can} id="review-denied" />}
        {open && approvals.length < required && <p className="mt-1 text-xs">Apply is enabled once {required} approval(s) are given.</p>}
        <p role="status" className="mt-2 text-sm">{notice}</p>
        <ErrorMessage error={review.error} />
      </section>
    </div>
  );
}
