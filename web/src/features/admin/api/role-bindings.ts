import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { GrantRoleResponseJson, RoleJson } from "../../../gen/flagforge/admin/v1/member_pb";
import { api, enc } from "../../../lib/api";

// A scope as the console spells it: project and environment, both empty for the
// organization.
export type ScopeInput = { project: string; environment: string };

export const grantRole = (org: string, memberId: string, role: RoleJson, scope: ScopeInput) =>
  api<GrantRoleResponseJson>("POST", `/v1/orgs/${enc(org)}/role-bindings`, { binding: { memberId, role, scope } });
export const revokeRole = (org: string, memberId: string, scope: ScopeInput) =>
  api<unknown>("POST", `/v1/orgs/${enc(org)}/role-bindings:revoke`, { memberId, scope });

// useRoleBindingMutation refreshes the bindings and every permission answer (the
// caller may have changed their own rights).
export function useRoleBindingMutation<I, O>(org: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["role-bindings", org] });
      void qc.invalidateQueries({ queryKey: ["permissions", org] });
    },
  });
}
