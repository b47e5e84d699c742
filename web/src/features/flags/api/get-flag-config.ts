import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetFlagConfigResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc } from "../../../lib/api";

export const getFlagConfig = (org: string, project: string, env: string, flag: string) =>
  api<GetFlagConfigResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}`,
  );

export const getFlagConfigOptions = (org: string, project: string, env: string, flag: string) =>
  queryOptions({
    queryKey: ["flag-config", org, project, env, flag],
    queryFn: () => getFlagConfig(org, project, env, flag),
  });

export const useFlagConfig = (org: string, project: string, env: string, flag: string) =>
  useQuery(getFlagConfigOptions(org, project, env, flag));
