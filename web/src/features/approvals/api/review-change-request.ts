import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ChangeRequestJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import { api, enc } from "../../../lib/api";

// The review actions of one change request. Each answers the updated request.
export type ReviewAction =
  | { kind: "approve"; contentDigest: string; comment: string }
  | { kind: "reject"; comment: string }
  | { kind: "comment"; text: string; path?: string }
  | { kind: "apply" }
  | { kind: "withdraw" };

export const reviewChangeRequest = (org: string, project: string, env: string, id: string, a: ReviewAction) => {
  const { kind, ...body } = a;
  return api<{ changeRequest?: ChangeRequestJson }>(
    "POST",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests/${enc(id)}:${kind}`,
    body,
  );
};

export function useReviewChangeRequest(org: string, project: string, env: string, id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (a: ReviewAction) => reviewChangeRequest(org, project, env, id, a),
    onSuccess: (r, a) => {
      qc.setQueryData(["change-request", org, project, env, id], { changeRequest: r.changeRequest });
      void qc.invalidateQueries({ queryKey: ["change-requests", org, project, env] });
      if (a.kind === "apply") {
        void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flag-configs", org, project, env] });
      }
    },
  });
}

// rebaseChangeRequest re-bases the proposal on the live revision (author only);
// the server resets its approvals, since what they signed changed.
export const rebaseChangeRequest = (org: string, project: string, env: string, cr: ChangeRequestJson, baseRevision: string) =>
  api<{ changeRequest?: ChangeRequestJson }>(
    "PATCH",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests/${enc(cr.id ?? "")}`,
    { change: cr.change, baseRevision, revision: cr.revision },
  );

export function useRebaseChangeRequest(org: string, project: string, env: string, id: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: { cr: ChangeRequestJson; baseRevision: string }) => rebaseChangeRequest(org, project, env, i.cr, i.baseRevision),
    onSuccess: (r) => {
      qc.setQueryData(["change-request", org, project, env, id], { changeRequest: r.changeRequest });
      void qc.invalidateQueries({ queryKey: ["change-requests", org, project, env] });
    },
  });
}
