import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetFlagResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc } from "../../../lib/api";

export const getFlag = (org: string, project: string, flag: string) =>
  api<GetFlagResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/flags/${enc(flag)}`);

export const getFlagOptions = (org: string, project: string, flag: string) =>
  queryOptions({ queryKey: ["flag", org, project, flag], queryFn: () => getFlag(org, project, flag) });

export const useFlag = (org: string, project: string, flag: string) => useQuery(getFlagOptions(org, project, flag));
