import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListOrganizationsResponseJson } from "../../../gen/flagforge/admin/v1/organization_pb";
import { api } from "../../../lib/api";

// listOrgs lists the caller's organizations; token, when given, is used instead of
// the session's (to check a token before signing in with it).
export const listOrgs = (token?: string) => api<ListOrganizationsResponseJson>("GET", "/v1/orgs", undefined, undefined, token);

export const listOrgsOptions = () => queryOptions({ queryKey: ["orgs"], queryFn: () => listOrgs() });

export const useOrgs = (enabled = true) => useQuery({ ...listOrgsOptions(), enabled });
