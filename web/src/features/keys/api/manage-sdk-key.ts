import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { CreateSdkKeyResponseJson, RevokeSdkKeyResponseJson, RotateSdkKeyResponseJson } from "../../../gen/flagforge/admin/v1/credential_pb";
import type { SdkKeyKindJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

const base = (org: string, project: string, env: string) =>
  `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/sdk-keys`;

export const createSdkKey = (org: string, project: string, env: string, name: string, kind: SdkKeyKindJson) =>
  api<CreateSdkKeyResponseJson>("POST", base(org, project, env), { name, kind });

export const rotateSdkKey = (org: string, project: string, env: string, keyId: string, overlapSeconds: number) =>
  api<RotateSdkKeyResponseJson>("POST", `${base(org, project, env)}/${enc(keyId)}:rotate`, { overlapSeconds });

export const revokeSdkKey = (org: string, project: string, env: string, keyId: string) =>
  api<RevokeSdkKeyResponseJson>("POST", `${base(org, project, env)}/${enc(keyId)}:revoke`, {});

// The mutations invalidate the environment's key list.
function useKeyMutation<I, O>(org: string, project: string, env: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => void qc.invalidateQueries({ queryKey: ["sdk-keys", org, project, env] }) });
}

export const useCreateSdkKey = (org: string, project: string, env: string) =>
  useKeyMutation(org, project, env, (i: { name: string; kind: SdkKeyKindJson }) => createSdkKey(org, project, env, i.name, i.kind));

export const useRotateSdkKey = (org: string, project: string, env: string) =>
  useKeyMutation(org, project, env, (i: { keyId: string; overlapSeconds: number }) => rotateSdkKey(org, project, env, i.keyId, i.overlapSeconds));

export const useRevokeSdkKey = (org: string, project: string, env: string) =>
  useKeyMutation(org, project, env, (keyId: string) => revokeSdkKey(org, project, env, keyId));
