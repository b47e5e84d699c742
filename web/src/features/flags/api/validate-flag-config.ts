import { keepPreviousData, useQuery } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import type { ValidateFlagConfigResponseJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import type { FlagConfigJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";
import { api, enc } from "../../../lib/api";

export const validateFlagConfig = (org: string, project: string, env: string, flag: string, config: FlagConfigJson, signal?: AbortSignal) =>
  api<ValidateFlagConfigResponseJson>(
    "POST",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}:validate`,
    { config },
    signal,
  );

// useValidateFlagConfig asks the server to validate the draft while the user
// types (300 ms after the last change), exactly as a save would: the answer
// lists each problem by the field it names. config null: nothing to check.
export function useValidateFlagConfig(org: string, project: string, env: string, flag: string, config: FlagConfigJson | null) {
  const text = config ? JSON.stringify(config) : "";
  const [settled, setSettled] = useState(text);
  useEffect(() => {
    const t = setTimeout(() => setSettled(text), 300);
    return () => clearTimeout(t);
  }, [text]);
  return useQuery({
    queryKey: ["validate-flag-config", org, project, env, flag, settled],
    queryFn: ({ signal }) => validateFlagConfig(org, project, env, flag, JSON.parse(settled) as FlagConfigJson, signal),
    enabled: settled !== "",
    placeholderData: keepPreviousData,
    staleTime: Infinity,
    retry: false,
  });
}
