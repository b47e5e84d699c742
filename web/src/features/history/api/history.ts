import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type {
  DiffFlagConfigRevisionsResponseJson,
  ListFlagConfigRevisionsResponseJson,
  RevertFlagConfigResponseJson,
  RollbackEnvironmentResponseJson,
} from "../../../gen/flagforge/admin/v1/history_pb";
import { api, enc, q } from "../../../lib/api";

// The flag's configuration history in one environment (HistoryService over REST):
// its revisions with who, when and why, the diff of any two, and revert.
const flagBase = (org: string, project: string, env: string, flag: string) =>
  `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}`;

export const useFlagRevisions = (org: string, project: string, env: string, flag: string) =>
  useQuery({
    queryKey: ["flag-revisions", org, project, env, flag],
    queryFn: () => api<ListFlagConfigRevisionsResponseJson>("GET", `${flagBase(org, project, env, flag)}/revisions${q({ pageSize: 100 })}`),
  });

// useRevisionDiff is the JSON diff turning revision from into to (both set).
export const useRevisionDiff = (org: string, project: string, env: string, flag: string, from: string, to: string) =>
  useQuery({
    queryKey: ["flag-revisions", org, project, env, flag, "diff", from, to],
    queryFn: () => api<DiffFlagConfigRevisionsResponseJson>("GET", `${flagBase(org, project, env, flag)}/revisions:diff${q({ from, to })}`),
    enabled: !!from && !!to,
  });

export type RevertInput = { revision: string; baseRevision: string; comment: string };

export function useRevertFlag(org: string, project: string, env: string, flag: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: RevertInput) =>
      api<RevertFlagConfigResponseJson>("POST", `${flagBase(org, project, env, flag)}/revisions/${enc(i.revision)}:revert`, {
        baseRevision: i.baseRevision,
        comment: i.comment,
      }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ["flag-revisions", org, project, env, flag] });
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env, flag] });
      void qc.invalidateQueries({ queryKey: ["change-requests", org, project] });
    },
  });
}

// RollbackTarget is a published manifest version or a time (RFC 3339).
export type RollbackInput = { manifestVersion?: string; time?: string; dryRun: boolean; comment: string };

export function useRollbackEnvironment(org: string, project: string, env: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: RollbackInput) =>
      api<RollbackEnvironmentResponseJson>("POST", `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}:rollback`, i),
    onSuccess: (_r, i) => {
      if (i.dryRun) return;
      void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env] });
      void qc.invalidateQueries({ queryKey: ["flag-revisions", org, project, env] });
      void qc.invalidateQueries({ queryKey: ["flags", org, project] });
      void qc.invalidateQueries({ queryKey: ["environments", org, project] });
      void qc.invalidateQueries({ queryKey: ["change-requests", org, project] });
    },
  });
}
