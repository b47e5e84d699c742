import type { FlagConfigJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";

// A draft is an unsaved targeting edit of one flag in one environment, with the
// configuration and revision it was based on. It is kept in the tab's session
// storage (per organization, project, flag and environment) so that a reload
// does not lose it; saving, scheduling, proposing or discarding removes it.
export type Draft = { draft: FlagConfigJson; origin: { config: FlagConfigJson; revision: string } };

const key = (org: string, project: string, flag: string, env: string) =>
  `flagforge:draft:${[org, project, flag, env].map(encodeURIComponent).join("/")}`;

// readDraft returns the kept draft, or null (none, or unreadable: dropped).
export function readDraft(org: string, project: string, flag: string, env: string): Draft | null {
  const k = key(org, project, flag, env);
  try {
    const raw = sessionStorage.getItem(k);
    if (!raw) return null;
    const d = JSON.parse(raw) as Draft;
    if (d && typeof d === "object" && d.draft && d.origin && typeof d.origin.revision === "string") return d;
  } catch {
    /* unreadable: dropped below */
  }
  sessionStorage.removeItem(k);
  return null;
}

export function writeDraft(org: string, project: string, flag: string, env: string, d: Draft): void {
  try {
    sessionStorage.setItem(key(org, project, flag, env), JSON.stringify(d));
  } catch {
    /* storage full or disabled: the draft stays in the page only */
  }
}

export function clearDraft(org: string, project: string, flag: string, env: string): void {
  sessionStorage.removeItem(key(org, project, flag, env));
}
