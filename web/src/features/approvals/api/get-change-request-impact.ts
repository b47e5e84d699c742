import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetChangeRequestImpactResponseJson } from "../../../gen/flagforge/admin/v1/impact_pb";
import { api, enc } from "../../../lib/api";

// getChangeRequestImpact previews the request's proposal over the environment's
// seen contexts (ImpactService/GetChangeRequestImpact).
export const getChangeRequestImpact = (org: string, project: string, env: string, id: string) =>
  api<GetChangeRequestImpactResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests/${enc(id)}/impact?maxExamples=5`,
  );

// The preview depends on the proposal and on what is live: it is keyed under the
// change request, so invalidating the request refreshes it.
export const getChangeRequestImpactOptions = (org: string, project: string, env: string, id: string) =>
  queryOptions({
    queryKey: ["change-request", org, project, env, id, "impact"],
    queryFn: () => getChangeRequestImpact(org, project, env, id),
  });

export const useChangeRequestImpact = (org: string, project: string, env: string, id: string) =>
  useQuery(getChangeRequestImpactOptions(org, project, env, id));
