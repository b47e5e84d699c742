import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { EmergencyOffFlagResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc } from "../../../lib/api";

export const emergencyOff = (org: string, project: string, env: string, flag: string, reason: string) =>
  api<EmergencyOffFlagResponseJson>(
    "POST",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}:emergencyOff`,
    { reason },
  );

export function useEmergencyOff(org: string, project: string, env: string, flag: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (reason: string) => emergencyOff(org, project, env, flag, reason),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env, flag] });
      void qc.invalidateQueries({ queryKey: ["flag-configs", org, project, env] });
      void qc.invalidateQueries({ queryKey: ["flags", org, project, "search"] });
    },
  });
}
