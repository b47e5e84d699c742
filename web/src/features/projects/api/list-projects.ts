import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListProjectsResponseJson } from "../../../gen/flagforge/admin/v1/project_pb";
import { api, enc } from "../../../lib/api";

export const listProjects = (org: string) =>
  api<ListProjectsResponseJson>("GET", `/v1/orgs/${enc(org)}/projects?pageSize=1000`);

export const listProjectsOptions = (org: string) =>
  queryOptions({ queryKey: ["projects", org], queryFn: () => listProjects(org), enabled: !!org });

export const useProjects = (org: string) => useQuery(listProjectsOptions(org));
