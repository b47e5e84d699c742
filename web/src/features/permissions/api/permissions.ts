import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetMyPermissionsResponseJson } from "../../../gen/flagforge/admin/v1/permission_pb";
import type { RoleJson } from "../../../gen/flagforge/admin/v1/member_pb";
import { api, enc, q } from "../../../lib/api";

// The caller's effective permissions, answered by the server from the same
// checks it enforces (GET /v1/orgs/{org}/me/permissions).
export const getMyPermissions = (org: string, project?: string, environment?: string) =>
  api<GetMyPermissionsResponseJson>("GET", `/v1/orgs/${enc(org)}/me/permissions${q({ project, environment })}`);

export const permissionsOptions = (org: string, project?: string, environment?: string) =>
  queryOptions({
    queryKey: ["permissions", org, project ?? "", environment ?? ""],
    queryFn: () => getMyPermissions(org, project, environment),
    staleTime: 30_000,
  });

export const roleName = (r?: RoleJson | string) =>
  r && r !== "ROLE_UNSPECIFIED" ? String(r).replace("ROLE_", "").toLowerCase() : "none";

// Can is what the console needs to render one control: whether the server
// would allow it and, when not, the reason to show beside it.
export type Can = { allowed: boolean; reason: string; loading: boolean };

// useCan answers one kind and action ("flag_config", "write") at a scope. While
// the answer loads the control stays enabled (the server decides anyway); a
// failed lookup also leaves it enabled, so the server's refusal is what shows.
export function useCan(org: string, kind: string, action: string, project?: string, environment?: string): Can {
  const p = useQuery(permissionsOptions(org, project, environment));
  const perm = p.data?.permissions?.find((x) => x.kind === kind && x.action === action);
  if (!perm) return { allowed: true, reason: "", loading: p.isPending };
  if (perm.allowed) return { allowed: true, reason: "", loading: false };
  const where = environment ? `in ${project}/${environment}` : project ? `in project ${project}` : `in ${org}`;
  const needs = perm.minRole ? `needs the ${roleName(perm.minRole)} role or above` : "no role may do this";
  return { allowed: false, reason: `Your role ${where} is ${roleName(p.data?.role)}: ${needs} (${perm.reason}).`, loading: false };
}
