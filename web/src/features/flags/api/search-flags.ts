import { keepPreviousData, queryOptions, useQuery } from "@tanstack/react-query";
import type {
  FlagEnvironmentStatesJson,
  FlagJson,
  FlagSortJson,
  FlagStatusJson,
  ListFlagsResponseJson,
} from "../../../gen/flagforge/admin/v1/flag_pb";
import type { FlagTypeJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

// FlagSearch is what the flags list asks the server for: it filters, sorts and
// computes each flag's lifecycle status per environment (ListFlags).
export type FlagSearch = {
  query?: string;
  tags?: string[];
  owner?: string;
  type?: FlagTypeJson;
  status?: FlagStatusJson;
  environment?: string;
  on?: boolean;
  sort?: FlagSortJson;
  descending?: boolean;
  includeArchived?: boolean;
};

export type FlagSearchResult = { flags: FlagJson[]; states: Map<string, FlagEnvironmentStatesJson>; total: number };

function params(s: FlagSearch, pageToken: string): string {
  const p = new URLSearchParams({ pageSize: "1000", includeEnvironments: "true" });
  if (pageToken) p.set("pageToken", pageToken);
  for (const [k, v] of Object.entries(s)) {
    if (v === undefined || v === "" || v === false) continue;
    if (Array.isArray(v)) v.forEach((x) => p.append(k, x));
    else p.set(k, String(v));
  }
  return p.toString();
}

// searchFlags reads every flag matching s (all pages) with its state in each
// environment: one request per 1,000 flags, whatever the number of environments.
export async function searchFlags(org: string, project: string, s: FlagSearch, signal?: AbortSignal): Promise<FlagSearchResult> {
  const out: FlagSearchResult = { flags: [], states: new Map(), total: 0 };
  let pageToken = "";
  do {
    const r = await api<ListFlagsResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/flags?${params(s, pageToken)}`, undefined, signal);
    out.flags.push(...(r.flags ?? []));
    for (const st of r.environments ?? []) out.states.set(st.flag ?? "", st);
    out.total = r.totalSize ?? out.flags.length;
    pageToken = r.nextPageToken ?? "";
  } while (pageToken);
  return out;
}

export const searchFlagsOptions = (org: string, project: string, s: FlagSearch) =>
  queryOptions({
    queryKey: ["flags", org, project, "search", s],
    queryFn: ({ signal }) => searchFlags(org, project, s, signal),
    // Typing a filter keeps the previous rows until the new answer arrives.
    placeholderData: keepPreviousData,
  });

export const useSearchFlags = (org: string, project: string, s: FlagSearch) => useQuery(searchFlagsOptions(org, project, s));
