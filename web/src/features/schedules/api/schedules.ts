import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { CreateScheduledChangeResponseJson, ListScheduledChangesResponseJson } from "../../../gen/flagforge/admin/v1/schedule_pb";
import type { FlagConfigJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

const base = (org: string, project: string, env: string) => `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/scheduled-changes`;

export const listSchedules = (org: string, project: string, env: string) =>
  api<ListScheduledChangesResponseJson>("GET", `${base(org, project, env)}?pageSize=200`);

export type ScheduleInput = { flag: string; config: FlagConfigJson; baseRevision: string; runTime: string; comment: string };

export const createSchedule = (org: string, project: string, env: string, i: ScheduleInput) =>
  api<CreateScheduledChangeResponseJson>("POST", base(org, project, env), { ...i, action: "SCHEDULED_ACTION_SET_CONFIG" });

export const cancelSchedule = (org: string, project: string, env: string, id: string) => api<unknown>("POST", `${base(org, project, env)}/${enc(id)}:cancel`, {});

export const listSchedulesOptions = (org: string, project: string, env: string) =>
  queryOptions({ queryKey: ["schedules", org, project, env], queryFn: () => listSchedules(org, project, env), refetchInterval: 5000 });
export const useSchedules = (org: string, project: string, env: string) => useQuery(listSchedulesOptions(org, project, env));

export function useScheduleMutation<I, O>(org: string, project: string, env: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => void qc.invalidateQueries({ queryKey: ["schedules", org, project, env] }) });
}
