import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { CreateApiTokenResponseJson, ListApiTokensResponseJson } from "../../../gen/flagforge/admin/v1/credential_pb";
import { api, enc } from "../../../lib/api";

export const listApiTokens = (org: string) => api<ListApiTokensResponseJson>("GET", `/v1/orgs/${enc(org)}/api-tokens?pageSize=1000`);
export const createApiToken = (org: string, name: string, memberId: string) =>
  api<CreateApiTokenResponseJson>("POST", `/v1/orgs/${enc(org)}/api-tokens`, { name, memberId: memberId || undefined });
export const revokeApiToken = (org: string, id: string) => api<unknown>("POST", `/v1/orgs/${enc(org)}/api-tokens/${enc(id)}:revoke`, {});

export const listApiTokensOptions = (org: string) => queryOptions({ queryKey: ["api-tokens", org], queryFn: () => listApiTokens(org) });
export const useApiTokens = (org: string, enabled = true) => useQuery({ ...listApiTokensOptions(org), enabled });

export function useCreateApiToken(org: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: { name: string; memberId: string }) => createApiToken(org, i.name, i.memberId),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["api-tokens", org] }),
  });
}

export function useRevokeApiToken(org: string) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: (id: string) => revokeApiToken(org, id), onSuccess: () => void qc.invalidateQueries({ queryKey: ["api-tokens", org] }) });
}
