import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { CreateFlagResponseJson, FlagJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc } from "../../../lib/api";

export const createFlag = (org: string, project: string, flag: FlagJson) =>
  api<CreateFlagResponseJson>("POST", `/v1/orgs/${enc(org)}/projects/${enc(project)}/flags`, { flag });

export function useCreateFlag(org: string, project: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (flag: FlagJson) => createFlag(org, project, flag),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["flags", org, project] });
      void qc.invalidateQueries({ queryKey: ["flag-configs", org, project] });
    },
  });
}
