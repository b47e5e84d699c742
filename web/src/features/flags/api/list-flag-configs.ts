import { queryOptions, useQuery, useQueries } from "@tanstack/react-query";
import type { FlagEnvironmentConfigJson, ListFlagConfigsResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc, q } from "../../../lib/api";

// listFlagConfigs reads every flag's configuration and lifecycle status in one
// environment (all pages).
export async function listFlagConfigs(org: string, project: string, env: string): Promise<FlagEnvironmentConfigJson[]> {
  const out: FlagEnvironmentConfigJson[] = [];
  let pageToken = "";
  do {
    const r = await api<ListFlagConfigsResponseJson>(
      "GET",
      `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags${q({ pageSize: 1000, pageToken })}`,
    );
    out.push(...(r.configs ?? []));
    pageToken = r.nextPageToken ?? "";
  } while (pageToken);
  return out;
}

export const listFlagConfigsOptions = (org: string, project: string, env: string) =>
  queryOptions({ queryKey: ["flag-configs", org, project, env], queryFn: () => listFlagConfigs(org, project, env) });

export const useFlagConfigs = (org: string, project: string, env: string) =>
  useQuery(listFlagConfigsOptions(org, project, env));

// useFlagConfigsByEnv reads the configurations of several environments at once.
export const useFlagConfigsByEnv = (org: string, project: string, envs: string[]) =>
  useQueries({ queries: envs.map((e) => listFlagConfigsOptions(org, project, e)) });
