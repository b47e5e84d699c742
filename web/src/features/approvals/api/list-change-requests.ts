import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ChangeRequestStateJson, ListChangeRequestsResponseJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import { api, enc, q } from "../../../lib/api";

export const listChangeRequests = (org: string, project: string, env: string, state?: ChangeRequestStateJson) =>
  api<ListChangeRequestsResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests${q({ pageSize: 200, state })}`,
  );

export const listChangeRequestsOptions = (org: string, project: string, env: string, state?: ChangeRequestStateJson) =>
  queryOptions({
    queryKey: ["change-requests", org, project, env, state ?? "all"],
    queryFn: () => listChangeRequests(org, project, env, state),
  });

export const useChangeRequests = (org: string, project: string, env: string, state?: ChangeRequestStateJson) =>
  useQuery(listChangeRequestsOptions(org, project, env, state));
