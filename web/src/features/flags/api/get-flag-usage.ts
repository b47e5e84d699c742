import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetFlagUsageResponseJson } from "../../../gen/flagforge/admin/v1/usage_pb";
import { api, enc } from "../../../lib/api";

// getFlagUsage reads the per-minute evaluation counts of the last hour (the
// evaluators report them; see docs/evaluator.md).
export const getFlagUsage = (org: string, project: string, env: string, flag: string) =>
  api<GetFlagUsageResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}/usage`,
  );

export const getFlagUsageOptions = (org: string, project: string, env: string, flag: string) =>
  queryOptions({
    queryKey: ["flag-usage", org, project, env, flag],
    queryFn: () => getFlagUsage(org, project, env, flag),
    refetchInterval: 30_000,
  });

export const useFlagUsage = (org: string, project: string, env: string, flag: string) =>
  useQuery(getFlagUsageOptions(org, project, env, flag));
