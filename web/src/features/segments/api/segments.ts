import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type { CreateSegmentResponseJson, ListSegmentsResponseJson, UpdateSegmentResponseJson } from "../../../gen/flagforge/admin/v1/segment_pb";
import type { SegmentJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

const base = (org: string, project: string, env: string) => `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/segments`;

export const listSegments = (org: string, project: string, env: string) => api<ListSegmentsResponseJson>("GET", `${base(org, project, env)}?pageSize=1000`);
export const createSegment = (org: string, project: string, env: string, segment: SegmentJson) =>
  api<CreateSegmentResponseJson>("POST", base(org, project, env), { segment });
export const updateSegment = (org: string, project: string, env: string, segment: SegmentJson, comment: string) =>
  api<UpdateSegmentResponseJson>("PUT", `${base(org, project, env)}/${enc(segment.key ?? "")}`, { definition: segment, revision: segment.revision, comment });
export const deleteSegment = (org: string, project: string, env: string, key: string, revision: string) =>
  api<unknown>("DELETE", `${base(org, project, env)}/${enc(key)}?revision=${enc(revision)}`);

export const listSegmentsOptions = (org: string, project: string, env: string) =>
  queryOptions({ queryKey: ["segments", org, project, env], queryFn: () => listSegments(org, project, env) });
export const useSegments = (org: string, project: string, env: string) => useQuery(listSegmentsOptions(org, project, env));

// useSegmentMutation runs one segment write and refreshes the environment's list.
export function useSegmentMutation<I, O>(org: string, project: string, env: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => void qc.invalidateQueries({ queryKey: ["segments", org, project, env] }) });
}
