import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { EnvironmentSettingsJson, UpdateEnvironmentResponseJson } from "../../../gen/flagforge/admin/v1/environment_pb";
import { api, enc } from "../../../lib/api";

export type UpdateEnvironmentInput = { env: string; settings: EnvironmentSettingsJson; revision: string };

export const updateEnvironment = (org: string, project: string, i: UpdateEnvironmentInput) =>
  api<UpdateEnvironmentResponseJson>("PATCH", `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(i.env)}`, {
    settings: i.settings,
    revision: i.revision,
  });

export function useUpdateEnvironment(org: string, project: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: UpdateEnvironmentInput) => updateEnvironment(org, project, i),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ["environments", org, project] }),
  });
}
