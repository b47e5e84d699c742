import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { UpdateFlagConfigResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import type { FlagConfigJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

export type UpdateFlagConfigInput = { config: FlagConfigJson; revision: string; comment: string };

export const updateFlagConfig = (org: string, project: string, env: string, flag: string, input: UpdateFlagConfigInput) =>
  api<UpdateFlagConfigResponseJson>(
    "PUT",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}`,
    input,
  );

export function useUpdateFlagConfig(org: string, project: string, env: string, flag: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (input: UpdateFlagConfigInput) => updateFlagConfig(org, project, env, flag, input),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env, flag] });
      void qc.invalidateQueries({ queryKey: ["flag-configs", org, project, env] });
      void qc.invalidateQueries({ queryKey: ["flags", org, project, "search"] });
    },
  });
}
