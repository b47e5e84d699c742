import { queryOptions, useQuery } from "@tanstack/react-query";
import type { FlagUsageSeriesJson, GetProjectUsageResponseJson } from "../../../gen/flagforge/admin/v1/usage_pb";
import { api, enc } from "../../../lib/api";

// getProjectUsage reads every flag's daily evaluation counts of the last 7 days in
// one environment: one request for all the sparklines of the flags list.
export const getProjectUsage = (org: string, project: string, env: string, signal?: AbortSignal) =>
  api<GetProjectUsageResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/usage`, undefined, signal);

export const projectUsageOptions = (org: string, project: string, env: string) =>
  queryOptions({
    queryKey: ["project-usage", org, project, env],
    queryFn: async ({ signal }) => {
      const r = await getProjectUsage(org, project, env, signal);
      return new Map<string, FlagUsageSeriesJson>((r.series ?? []).map((s) => [s.flag ?? "", s]));
    },
    enabled: env !== "",
    refetchInterval: 60_000,
  });

export const useProjectUsage = (org: string, project: string, env: string) => useQuery(projectUsageOptions(org, project, env));
