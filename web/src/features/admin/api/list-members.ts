import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListMembersResponseJson, ListRoleBindingsResponseJson } from "../../../gen/flagforge/admin/v1/member_pb";
import { api, enc } from "../../../lib/api";

export const listMembers = (org: string) => api<ListMembersResponseJson>("GET", `/v1/orgs/${enc(org)}/members?pageSize=1000`);
export const listRoleBindings = (org: string) => api<ListRoleBindingsResponseJson>("GET", `/v1/orgs/${enc(org)}/role-bindings?pageSize=1000`);

export const listMembersOptions = (org: string) => queryOptions({ queryKey: ["members", org], queryFn: () => listMembers(org) });
export const listRoleBindingsOptions = (org: string) => queryOptions({ queryKey: ["role-bindings", org], queryFn: () => listRoleBindings(org) });

export const useMembers = (org: string) => useQuery(listMembersOptions(org));
export const useRoleBindings = (org: string) => useQuery(listRoleBindingsOptions(org));
