import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { CreateMemberResponseJson, RoleJson } from "../../../gen/flagforge/admin/v1/member_pb";
import { api, enc } from "../../../lib/api";

export const createMember = (org: string, email: string, role: RoleJson) =>
  api<CreateMemberResponseJson>("POST", `/v1/orgs/${enc(org)}/members`, { member: { email }, role });

export function useCreateMember(org: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: { email: string; role: RoleJson }) => createMember(org, i.email, i.role),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["members", org] });
      void qc.invalidateQueries({ queryKey: ["role-bindings", org] });
    },
  });
}
