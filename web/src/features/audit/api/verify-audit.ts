import { useMutation } from "@tanstack/react-query";
import type { VerifyAuditChainResponseJson } from "../../../gen/flagforge/admin/v1/audit_pb";
import { api, enc } from "../../../lib/api";

// verifyAudit recomputes the organization's audit hash chain on the server.
export const verifyAudit = (org: string) => api<VerifyAuditChainResponseJson>("POST", `/v1/orgs/${enc(org)}/audit:verify`, {});

export const useVerifyAudit = (org: string) => useMutation({ mutationFn: () => verifyAudit(org) });
