import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type {
  CreateReleasePlanRequestJson,
  CreateReleasePlanResponseJson,
  ListReleasePlansResponseJson,
  ReleasePlanJson,
} from "../../../gen/flagforge/admin/v1/release_plan_pb";
import { api, enc } from "../../../lib/api";

const base = (org: string, project: string, env: string) => `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/release-plans`;

// listReleasePlans lists a flag's plans in one environment, oldest first.
export const listReleasePlans = (org: string, project: string, env: string, flag: string) =>
  api<ListReleasePlansResponseJson>("GET", `${base(org, project, env)}?flag=${enc(flag)}&pageSize=200`);

// Running plans change by themselves (steps, guardrails): poll while the page is open.
export const releasePlansOptions = (org: string, project: string, env: string, flag: string) =>
  queryOptions({ queryKey: ["release-plans", org, project, env, flag], queryFn: () => listReleasePlans(org, project, env, flag), refetchInterval: 2000 });
export const useReleasePlans = (org: string, project: string, env: string, flag: string) => useQuery(releasePlansOptions(org, project, env, flag));

export type PlanInput = Omit<CreateReleasePlanRequestJson, "org" | "project" | "environment">;

export const createReleasePlan = (org: string, project: string, env: string, i: PlanInput) =>
  api<CreateReleasePlanResponseJson>("POST", base(org, project, env), i);

export type PlanAction = "start" | "pause" | "resume" | "rollback" | "cancel";

// actOnReleasePlan starts, pauses, resumes, rolls back or cancels a plan.
export const actOnReleasePlan = (org: string, project: string, env: string, id: string, action: PlanAction, comment: string) =>
  api<{ releasePlan?: ReleasePlanJson }>("POST", `${base(org, project, env)}/${enc(id)}:${action}`, { comment });

// useReleasePlanMutation runs fn and refreshes the flag's plans and its configuration
// (a step or a rollback changes what the flag serves).
export function useReleasePlanMutation<I, O>(org: string, project: string, env: string, flag: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: fn,
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["release-plans", org, project, env, flag] });
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env, flag] });
    },
  });
}
