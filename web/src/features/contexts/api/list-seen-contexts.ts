import { queryOptions, useQuery } from "@tanstack/react-query";
import type { GetContextPolicyResponseJson, ListSeenContextsResponseJson } from "../../../gen/flagforge/admin/v1/seen_context_pb";
import { api, enc } from "../../../lib/api";

// listSeenContexts reads the newest seen contexts of an environment
// (SeenContextService/ListSeenContexts).
export const listSeenContexts = (org: string, project: string, env: string) =>
  api<ListSeenContextsResponseJson>(
    "GET",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/seen-contexts?pageSize=100`,
  );

export const listSeenContextsOptions = (org: string, project: string, env: string) =>
  queryOptions({ queryKey: ["seen-contexts", org, project, env], queryFn: () => listSeenContexts(org, project, env) });

export const useSeenContexts = (org: string, project: string, env: string) =>
  useQuery(listSeenContextsOptions(org, project, env));

// getContextPolicy reads the project's private attributes.
export const getContextPolicy = (org: string, project: string) =>
  api<GetContextPolicyResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/context-policy`);

export const useContextPolicy = (org: string, project: string) =>
  useQuery(queryOptions({ queryKey: ["context-policy", org, project], queryFn: () => getContextPolicy(org, project) }));
