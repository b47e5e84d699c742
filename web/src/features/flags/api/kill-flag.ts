import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { KillFlagResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc } from "../../../lib/api";

export const killFlag = (org: string, project: string, flag: string, reason: string) =>
  api<KillFlagResponseJson>("POST", `/v1/orgs/${enc(org)}/projects/${enc(project)}/flags/${enc(flag)}:kill`, { reason });

export function useKillFlag(org: string, project: string, flag: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (reason: string) => killFlag(org, project, flag, reason),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project] });
      void qc.invalidateQueries({ queryKey: ["flag-configs", org, project] });
      void qc.invalidateQueries({ queryKey: ["flags", org, project, "search"] });
    },
  });
}
