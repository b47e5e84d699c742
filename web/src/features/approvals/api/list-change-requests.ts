import { queryOptions, useQuery } from "@tanstack/react-query";
import type {
  ChangeRequestInboxJson,
  ChangeRequestStateJson,
  ListChangeRequestsResponseJson,
} from "../../../gen/flagforge/admin/v1/change_request_pb";
import { api, enc, q } from "../../../lib/api";

// ChangeRequestQuery narrows the inbox: by state, and by the caller's part
// (inbox: requests they could approve now, or their own); the server filters.
export type ChangeRequestQuery = { state?: ChangeRequestStateJson; inbox?: ChangeRequestInboxJson };

export const listChangeRequests = (org: string, project: string, env: string, f: ChangeRequestQuery = {}) =>
  api<ListChangeRequestsResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/change-requests${q({ pageSize: 200, state: f.state, inbox: f.inbox })}`,
  );

export const listChangeRequestsOptions = (org: string, project: string, env: string, f: ChangeRequestQuery = {}) =>
  queryOptions({
    queryKey: ["change-requests", org, project, env, f.state ?? "all", f.inbox ?? "everyone"],
    queryFn: () => listChangeRequests(org, project, env, f),
  });

export const useChangeRequests = (org: string, project: string, env: string, f: ChangeRequestQuery = {}) =>
  useQuery(listChangeRequestsOptions(org, project, env, f));
