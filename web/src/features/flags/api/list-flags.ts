import { queryOptions, useQuery } from "@tanstack/react-query";
import type { FlagJson, ListFlagsResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc, q } from "../../../lib/api";

// listFlags reads every flag of the project (all pages), archived ones included
// when asked.
export async function listFlags(org: string, project: string, includeArchived: boolean): Promise<FlagJson[]> {
  const out: FlagJson[] = [];
  let pageToken = "";
  do {
    const r = await api<ListFlagsResponseJson>(
      "GET",
      `/v1/orgs/${enc(org)}/projects/${enc(project)}/flags${q({ pageSize: 1000, pageToken, includeArchived })}`,
    );
    out.push(...(r.flags ?? []));
    pageToken = r.nextPageToken ?? "";
  } while (pageToken);
  return out;
}

export const listFlagsOptions = (org: string, project: string, includeArchived = false) =>
  queryOptions({
    queryKey: ["flags", org, project, { includeArchived }],
    queryFn: () => listFlags(org, project, includeArchived),
  });

export const useFlags = (org: string, project: string, includeArchived = false) =>
  useQuery(listFlagsOptions(org, project, includeArchived));
