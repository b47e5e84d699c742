import { useMutation } from "@tanstack/react-query";
import type { ExplainFlagResponseJson } from "../../../gen/flagforge/admin/v1/explain_pb";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { api, enc } from "../../../lib/api";

export type ExplainInput = { org: string; project: string; env: string; flag: string; context: JsonObject; defaultValue?: JsonValue };

export const explainFlag = ({ org, project, env, flag, context, defaultValue }: ExplainInput) =>
  api<ExplainFlagResponseJson>(
    "POST",
    `/v1/orgs/${enc(org)}/projects/${enc(project)}/environments/${enc(env)}/flags/${enc(flag)}:explain`,
    { context, defaultValue },
  );

// useExplainFlag is a mutation: each run is an explicit request with its own input.
export const useExplainFlag = () => useMutation({ mutationFn: explainFlag });
