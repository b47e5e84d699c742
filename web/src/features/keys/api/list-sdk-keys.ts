import { queryOptions, useQuery } from "@tanstack/react-query";
import type { ListSdkKeysResponseJson } from "../../../gen/flagforge/admin/v1/credential_pb";
import { api, enc } from "../../../lib/api";

export const listSdkKeys = (org: string, project: string, env: string) =>
  api<ListSdkKeysResponseJson>("GET", `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/sdk-keys?pageSize=1000`);

export const listSdkKeysOptions = (org: string, project: string, env: string) =>
  queryOptions({ queryKey: ["sdk-keys", org, project, env], queryFn: () => listSdkKeys(org, project, env) });

export const useSdkKeys = (org: string, project: string, env: string, enabled = true) => useQuery({ ...listSdkKeysOptions(org, project, env), enabled });
