import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListAuditEntriesResponseJson } from "../../../gen/flagforge/admin/v1/audit_pb";
import { api, enc, q } from "../../../lib/api";

export type AuditFilter = { resource?: string; actorId?: string; action?: string; startTime?: string; endTime?: string };

export const listAudit = (org: string, f: AuditFilter) =>
  api<ListAuditEntriesResponseJson>("GET", `/v1/orgs/${enc(org)}/audit${q({ pageSize: 200, ...f })}`);

export const listAuditOptions = (org: string, f: AuditFilter) =>
  queryOptions({ queryKey: ["audit", org, f], queryFn: () => listAudit(org, f) });

export const useAudit = (org: string, f: AuditFilter, enabled = true) => useQuery({ ...listAuditOptions(org, f), enabled });
