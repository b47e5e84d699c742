import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ChangeRequestJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import type { FlagEnvironmentStatesJson, FlagJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { api, enc, q } from "../../../lib/api";

// A bulk action on the flags list. Each flag is one ordinary write (ArchiveFlag,
// UpdateFlag, PatchFlagConfig) with the revision the list showed, so each is
// governed exactly like the same write made alone: a protected environment turns
// "off" into a change request, refuses archiving a flag it serves, and so on.
export type BulkAction =
  | { kind: "archive" }
  | { kind: "tag"; tag: string }
  | { kind: "off"; env: string; comment: string };

export type BulkOutcome = { flag: string; ok: boolean; changeRequest?: ChangeRequestJson; message: string };

async function one(org: string, project: string, f: FlagJson, st: FlagEnvironmentStatesJson | undefined, a: BulkAction): Promise<BulkOutcome> {
  const key = f.key ?? "";
  const base = `/v1/orgs/${enc(org)}/projects/${enc(project)}`;
  try {
    switch (a.kind) {
      case "archive":
        await api("POST", `${base}/flags/${enc(key)}:archive`, { revision: f.revision });
        return { flag: key, ok: true, message: "archived" };
      case "tag": {
        if ((f.tags ?? []).includes(a.tag)) return { flag: key, ok: true, message: `already tagged ${a.tag}` };
        const definition = { ...f, tags: [...(f.tags ?? []), a.tag] };
        await api("PATCH", `${base}/flags/${enc(key)}`, { definition, revision: f.revision });
        return { flag: key, ok: true, message: `tagged ${a.tag}` };
      }
      case "off": {
        const s = st?.states?.find((x) => x.environment === a.env);
        if (s && !s.on) return { flag: key, ok: true, message: `already off in ${a.env}` };
        // The body is the merge patch; the revision it is based on and the comment
        // travel as query parameters.
        const r = await api<{ changeRequest?: ChangeRequestJson }>(
          "PATCH",
          `${base}/environments/${enc(a.env)}/flags/${enc(key)}${q({ revision: s?.revision, comment: a.comment })}`,
          { on: false },
        );
        if (r.changeRequest) return { flag: key, ok: true, changeRequest: r.changeRequest, message: `change request ${r.changeRequest.id ?? ""} created (${a.env} requires approval)` };
        return { flag: key, ok: true, message: `off in ${a.env}` };
      }
    }
  } catch (e) {
    return { flag: key, ok: false, message: (e as Error).message };
  }
}

// runBulk applies a to every flag, four at a time, and reports each outcome; a
// refusal of one flag never stops the others.
export async function runBulk(org: string, project: string, flags: FlagJson[], states: Map<string, FlagEnvironmentStatesJson>, a: BulkAction): Promise<BulkOutcome[]> {
  const out: BulkOutcome[] = new Array(flags.length);
  let next = 0;
  const worker = async () => {
    while (next < flags.length) {
      const i = next++;
      out[i] = await one(org, project, flags[i], states.get(flags[i].key ?? ""), a);
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, flags.length) }, worker));
  return out;
}

export function useBulkFlags(org: string, project: string) {
  const qc = useQueryClient();
  return useMutation({
    mutationFn: (i: { flags: FlagJson[]; states: Map<string, FlagEnvironmentStatesJson>; action: BulkAction }) => runBulk(org, project, i.flags, i.states, i.action),
    onSettled: () => {
      void qc.invalidateQueries({ queryKey: ["flags", org, project] });
      void qc.invalidateQueries({ queryKey: ["flag-configs", org, project] });
      void qc.invalidateQueries({ queryKey: ["change-requests", org, project] });
    },
  });
}
