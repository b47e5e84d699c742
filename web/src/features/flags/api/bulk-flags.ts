import { useMutation, useQueryClient } from "@tanstack/react-query";
import type { ChangeRequestJson } from "../../../gen/flagforge/admin/v1/change_request_pb";
import type { GetEnvironmentResponseJson } from "../../../gen/flagforge/admin/v1/environment_pb";
import type { BulkFlagConfigJson, BulkWriteResponseJson, FlagEnvironmentStatesJson, FlagJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import { ApiError, api, enc, q } from "../../../lib/api";
import { listFlagConfigs } from "./list-flag-configs";

// A bulk action on the flags list. Adding a tag, and turning flags off in an
// environment that does not require approvals, is ONE bulk write
// (POST …:bulkWrite): one transaction, all or nothing, each item based on the
// revision the list showed (a flag changed since refuses the whole write).
// Turning off in an environment that requires approvals proposes one change
// request per flag (a bulk write may not change what it serves), and archiving
// is one ArchiveFlag per flag (the bulk write cannot archive): both governed
// exactly as the same write made alone.
export type BulkAction =
  | { kind: "archive" }
  | { kind: "tag"; tag: string }
  | { kind: "off"; env: string; comment: string };

export type BulkOutcome = { flag: string; ok: boolean; changeRequest?: ChangeRequestJson; message: string };

// BulkResult is what happened: per flag, and whether it was one atomic write.
export type BulkResult = { outcomes: BulkOutcome[]; atomic: boolean };

const projectPath = (org: string, project: string) => `/v1/orgs/${enc(org)}/projects/${enc(project)}`;

// bulkWrite sends one bulk write; a refusal refuses every flag, the one the
// server named (configs[i] / flags[i]) with its own reason.
async function bulkWrite(
  org: string,
  project: string,
  body: { flags?: FlagJson[]; configs?: BulkFlagConfigJson[]; comment?: string },
  keys: string[],
  done: (key: string) => string,
): Promise<BulkOutcome[]> {
  try {
    await api<BulkWriteResponseJson>("POST", `${projectPath(org, project)}:bulkWrite`, body);
    return keys.map((k) => ({ flag: k, ok: true, message: done(k) }));
  } catch (e) {
    const err = e as Error;
    const m = err instanceof ApiError ? /^(flags|configs)\[(\d+)\]/.exec(err.field ?? "") : null;
    const culprit = m ? (m[1] === "flags" ? body.flags?.[Number(m[2])]?.key : body.configs?.[Number(m[2])]?.flag) : undefined;
    return keys.map((k) => ({
      flag: k,
      ok: false,
      message: k === culprit || !culprit ? err.message : `not changed: the bulk write was refused because of ${culprit}`,
    }));
  }
}

async function tagAll(org: string, project: string, flags: FlagJson[], tag: string): Promise<BulkOutcome[]> {
  const already = flags.filter((f) => (f.tags ?? []).includes(tag));
  const todo = flags.filter((f) => !(f.tags ?? []).includes(tag));
  const out = already.map((f) => ({ flag: f.key ?? "", ok: true, message: `already tagged ${tag}` }));
  if (!todo.length) return out;
  const defs = todo.map((f) => ({ ...f, tags: [...(f.tags ?? []), tag] }));
  return [...out, ...(await bulkWrite(org, project, { flags: defs, comment: `tag ${tag}` }, todo.map((f) => f.key ?? ""), () => `tagged ${tag}`))];
}

async function offAll(org: string, project: string, flags: FlagJson[], states: Map<string, FlagEnvironmentStatesJson>, env: string, comment: string): Promise<BulkOutcome[]> {
  const stateOf = (k: string) => states.get(k)?.states?.find((x) => x.environment === env);
  const on = flags.filter((f) => stateOf(f.key ?? "")?.on !== false);
  const out: BulkOutcome[] = flags.filter((f) => !on.includes(f)).map((f) => ({ flag: f.key ?? "", ok: true, message: `already off in ${env}` }));
  if (!on.length) return out;
  // The configurations as stored (one read per 1,000 flags), turned off, each
  // based on the revision the list showed.
  const wanted = new Set(on.map((f) => f.key ?? ""));
  const current = (await listFlagConfigs(org, project, env)).filter((c) => wanted.has(c.flag ?? ""));
  const configs: BulkFlagConfigJson[] = current.map((c) => ({
    environment: env,
    flag: c.flag,
    config: { ...c.config, on: false },
    baseRevision: stateOf(c.flag ?? "")?.revision ?? c.revision,
  }));
  const found = new Set(current.map((c) => c.flag ?? ""));
  const missing = [...wanted].filter((k) => !found.has(k)).map((k) => ({ flag: k, ok: false, message: `no configuration in ${env} (archived?)` }));
  if (!configs.length) return [...out, ...missing];
  return [...out, ...missing, ...(await bulkWrite(org, project, { configs, comment }, [...found], () => `off in ${env}`))];
}

// oneByOne runs a per-flag write, four at a time; a refusal of one flag never
// stops the others.
async function oneByOne(flags: FlagJson[], write: (f: FlagJson) => Promise<BulkOutcome>): Promise<BulkOutcome[]> {
  const out: BulkOutcome[] = new Array(flags.length);
  let next = 0;
  const worker = async () => {
    while (next < flags.length) {
      const i = next++;
      try {
        out[i] = await write(flags[i]);
      } catch (e) {
        out[i] = { flag: flags[i].key ?? "", ok: false, message: (e as Error).message };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(4, flags.length) }, worker));
  return out;
}

export async function runBulk(org: string, project: string, flags: FlagJson[], states: Map<string, FlagEnvironmentStatesJson>, a: BulkAction): Promise<BulkResult> {
  const base = projectPath(org, project);
  switch (a.kind) {
    case "tag":
      return { outcomes: await tagAll(org, project, flags, a.tag), atomic: true };
    case "off": {
      // Whether the environment requires approvals is read now, not taken from
      // the page's cached list: an admin may have changed it since (a bulk write
      // there would be refused as a whole).
      const fresh = await api<GetEnvironmentResponseJson>("GET", `${base}/environments/${enc(a.env)}`);
      if (!fresh.environment?.settings?.approvalsRequired) return { outcomes: await offAll(org, project, flags, states, a.env, a.comment), atomic: true };
      return {
        atomic: false,
        outcomes: await oneByOne(flags, async (f) => {
          const key = f.key ?? "";
          const s = states.get(key)?.states?.find((x) => x.environment === a.env);
          if (s && !s.on) return { flag: key, ok: true, message: `already off in ${a.env}` };
          // The body is the merge patch; the revision it is based on and the
          // comment travel as query parameters.
          const r = await api<{ changeRequest?: ChangeRequestJson }>(
            "PATCH",
            `${base}/environments/${enc(a.env)}/flags/${enc(key)}${q({ revision: s?.revision, comment: a.comment })}`,
            { on: false },
          );
          if (r.changeRequest) return { flag: key, ok: true, changeRequest: r.changeRequest, message: `change request ${r.changeRequest.id ?? ""} created (${a.env} requires approval)` };
          return { flag: key, ok: true, message: `off in ${a.env}` };
        }),
      };
    }
    case "archive":
      return {
        atomic: false,
        outcomes: await oneByOne(flags, async (f) => {
          await api("POST", `${base}/flags/${enc(f.key ?? "")}:archive`, { revision: f.revision });
          return { flag: f.key ?? "", ok: true, message: "archived" };
        }),
      };
  }
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
