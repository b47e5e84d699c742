import type { FlagStatusJson } from "../../../gen/flagforge/admin/v1/flag_pb";
import type { FlagTypeJson, OperatorJson } from "../../../gen/flagforge/manifest/v1/manifest_pb";

// One vocabulary for statuses, types and operators everywhere in the console.

export function statusLabel(s?: FlagStatusJson | number): string {
  switch (s) {
    case "FLAG_STATUS_ACTIVE":
      return "Active";
    case "FLAG_STATUS_INACTIVE":
      return "Inactive";
    case "FLAG_STATUS_STALE":
      return "Stale";
    case "FLAG_STATUS_ARCHIVED":
      return "Archived";
    case "FLAG_STATUS_NEW":
      return "New";
  }
  return "—";
}

export function typeLabel(t?: FlagTypeJson | number): string {
  switch (t) {
    case "FLAG_TYPE_BOOLEAN":
      return "boolean";
    case "FLAG_TYPE_STRING":
      return "string";
    case "FLAG_TYPE_NUMBER":
      return "number";
    case "FLAG_TYPE_JSON":
      return "JSON";
  }
  return "—";
}

// Operators the rule builder offers, with their English phrase.
export const operators: { op: OperatorJson; phrase: string; noValues?: boolean; numeric?: boolean }[] = [
  { op: "OPERATOR_IN", phrase: "is one of" },
  { op: "OPERATOR_STARTS_WITH", phrase: "starts with" },
  { op: "OPERATOR_ENDS_WITH", phrase: "ends with" },
  { op: "OPERATOR_CONTAINS", phrase: "contains" },
  { op: "OPERATOR_MATCHES", phrase: "matches regex" },
  { op: "OPERATOR_LT", phrase: "<", numeric: true },
  { op: "OPERATOR_LTE", phrase: "≤", numeric: true },
  { op: "OPERATOR_GT", phrase: ">", numeric: true },
  { op: "OPERATOR_GTE", phrase: "≥", numeric: true },
  { op: "OPERATOR_SEMVER_EQ", phrase: "is version" },
  { op: "OPERATOR_SEMVER_LT", phrase: "is a version before" },
  { op: "OPERATOR_SEMVER_GT", phrase: "is a version after" },
  { op: "OPERATOR_BEFORE", phrase: "is before (date)" },
  { op: "OPERATOR_AFTER", phrase: "is after (date)" },
  { op: "OPERATOR_IP_IN_CIDR", phrase: "is an IP in" },
  { op: "OPERATOR_EXISTS", phrase: "exists", noValues: true },
  { op: "OPERATOR_SEGMENT_MATCH", phrase: "is in segment" },
];

export function operatorPhrase(op?: OperatorJson | number): string {
  return operators.find((o) => o.op === op)?.phrase ?? String(op ?? "?");
}

// percent renders a share of a total with up to 3 decimals ("10%", "33.333%").
export function percent(weight: number, total: number): string {
  if (total <= 0) return "0%";
  return `${Number(((weight * 100) / total).toFixed(3))}%`;
}
