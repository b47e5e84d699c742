import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetChangeRequestResponseJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import { api, enc } from "../../../lib/api";

export const getChangeRequest = (org: string, project: string, env: string, id: string) =>
  api<GetChangeRequestResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests/${enc(id)}`,
  );

export const getChangeRequestOptions = (org: string, project: string, env: string, id: string) =>
  queryOptions({ queryKey: ["change-request", org, project, env, id], queryFn: () => getChangeRequest(org, project, env, id) });

export const useChangeRequest = (org: string, project: string, env: string, id: string) =>
  useQuery(getChangeRequestOptions(org, project, env, id));
