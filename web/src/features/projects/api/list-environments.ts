import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListEnvironmentsResponseJson } from "../../../gen/flagforge/admin/v1/environment_pb";
import { api, enc } from "../../../lib/api";

export const listEnvironments = (org: string, project: string) =>
  api<ListEnvironmentsResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments?pageSize=1000`);

export const listEnvironmentsOptions = (org: string, project: string) =>
  queryOptions({ queryKey: ["environments", org, project], queryFn: () => listEnvironments(org, project) });

export const useEnvironments = (org: string, project: string) => useQuery(listEnvironmentsOptions(org, project));
