import { useState } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { MemberJson, RoleBindingJson, RoleJson } from "../../../gen/flagforge/admin/v1/member_pb";
import { ApiError } from "../../../lib/api";
import { roleName, useCan } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import { useEnvironments } from "../../projects/api/list-environments";
import { useCreateMember } from "../api/create-member";
import { useMembers, useRoleBindings } from "../api/list-members";
import { grantRole, revokeRole, useRoleBindingMutation, type ScopeInput } from "../api/role-bindings";

export const roles: Record<string, string> = {
  ROLE_OWNER: "Owner",
  ROLE_ADMIN: "Admin",
  ROLE_EDITOR: "Editor",
  ROLE_VIEWER: "Viewer",
};

// scopeLabel says where a grant applies, in words.
export const scopeLabel = (s?: { project?: string; environment?: string }) =>
  s?.environment ? `environment ${s.project}/${s.environment}` : s?.project ? `project ${s.project}` : "the organization";

const parseScope = (v: string): ScopeInput => {
  const [project = "", environment = ""] = v.split("/");
  return { project, environment };
};

// Grant is one role binding with its Revoke (disabled with the reason when the
// caller may not change roles at its scope).
function Grant({ org, b, who }: { org: string; b: RoleBindingJson; who: string }) {
  const scope = { project: b.scope?.project ?? "", environment: b.scope?.environment ?? "" };
  const can = useCan(org, "role_binding", b.role === "ROLE_OWNER" ? "manage_owners" : "write", scope.project || undefined, scope.environment || undefined);
  const [confirming, setConfirming] = useState(false);
  const revoke = useRoleBindingMutation(org, () => revokeRole(org, b.memberId ?? "", scope));
  const id = `grant-denied-${b.memberId}-${scope.project}-${scope.environment}`;
  const what = `${roles[String(b.role)] ?? b.role} of ${scopeLabel(scope)}`;
  return (
    <li className="flex flex-wrap items-center gap-2">
      <span>{what}</span>
      {confirming ? (
        <button type="button" className={btnDanger} disabled={revoke.isPending} onClick={() => revoke.mutate(undefined)}>
          Confirm revoke<span className="sr-only"> {what} from {who}</span>
        </button>
      ) : (
        <button type="button" className={btn} {...deniedProps(can, id)} onClick={() => setConfirming(true)}>
          Revoke<span className="sr-only"> {what} from {who}</span>
        </button>
      )}
      <Denied can={can} id={id} />
      <ErrorMessage error={revoke.error} />
    </li>
  );
}

// Members lists the organization's members with their grants at organization,
// project and environment scope; grants and revokes roles at any of them (the
// most specific grant decides: an environment grant overrides the project's);
// adds members with an organization role. Controls the caller's role may not use
// are disabled with the reason; the server refuses them anyway.
export function Members({ org, project }: { org: string; project: string }) {
  const members = useMembers(org);
  const bindings = useRoleBindings(org);
  const envs = useEnvironments(org, project);
  const createMember = useCreateMember(org);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState<RoleJson>("ROLE_VIEWER");
  const [grantMember, setGrantMember] = useState("");
  const [grantRoleValue, setGrantRoleValue] = useState<RoleJson>("ROLE_EDITOR");
  const [grantScope, setGrantScope] = useState(`${project}/`);
  const [notice, setNotice] = useState("");
  const scope = parseScope(grantScope);
  const canAdd = useCan(org, "member", "write");
  const canGrantHere = useCan(org, "role_binding", "write", project);
  const canGrant = useCan(org, "role_binding", grantRoleValue === "ROLE_OWNER" ? "manage_owners" : "write", scope.project || undefined, scope.environment || undefined);
  const grant = useRoleBindingMutation(org, (i: { memberId: string; role: RoleJson; scope: ScopeInput }) => grantRole(org, i.memberId, i.role, i.scope));
  const all = members.data?.members ?? [];
  const memberId = grantMember || all[0]?.id || "";
  const who = (m: MemberJson) => m.email || m.name || m.id || "";
  const grantField = grant.error instanceof ApiError ? grant.error.field ?? "" : "";
  const scopes: { value: string; label: string }[] = [
    { value: "/", label: "The organization" },
    { value: `${project}/`, label: `Project ${project}` },
    ...(envs.data?.environments ?? []).map((e) => ({ value: `${project}/${e.key}`, label: `Environment ${project}/${e.key}` })),
  ];
  return (
    <section className={card} aria-labelledby="members-title">
      <h2 id="members-title" className="mb-2 text-lg font-semibold">
        Members of {org}
      </h2>
      <p className="mb-2 text-sm">
        A role applies to the organization, one project, or one environment of it; the most specific grant decides (an environment grant overrides the project's, which
        overrides the organization's). Owners &gt; admins &gt; editors &gt; viewers.
      </p>
      <div className="overflow-x-auto">
        <table className="w-full text-sm">
          <caption className="sr-only">Members and their role grants</caption>
          <thead>
            <tr className="text-left">
              <th scope="col">Member</th>
              <th scope="col">Grants</th>
            </tr>
          </thead>
          <tbody>
            {all.map((m) => (
              <tr key={m.id} className="border-t border-slate-200 align-top dark:border-slate-800">
                <th scope="row" className="py-1 pr-2 text-left font-normal">
                  {who(m)}
                </th>
                <td className="py-1">
                  <ul className="flex flex-col gap-1">
                    {(bindings.data?.bindings ?? [])
                      .filter((b) => b.memberId === m.id)
                      .map((b) => (
                        <Grant key={`${b.scope?.project}/${b.scope?.environment}`} org={org} b={b} who={who(m)} />
                      ))}
                  </ul>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form
        className="mt-3"
        aria-label="Grant a role"
        onSubmit={(e) => {
          e.preventDefault();
          const m = all.find((x) => x.id === memberId);
          grant.mutate(
            { memberId, role: grantRoleValue, scope },
            { onSuccess: () => setNotice(`${m ? who(m) : memberId} is now ${roleName(grantRoleValue)} of ${scopeLabel(scope)}.`) },
          );
        }}
      >
        <fieldset className="flex flex-wrap items-end gap-3" {...deniedProps(canGrantHere, "grant-denied")}>
          <legend className="mb-1 text-sm font-semibold">Grant a role</legend>
          <label className="flex flex-col gap-1">
            <span className={label}>Member</span>
            <select className={input} value={memberId} onChange={(e) => setGrantMember(e.target.value)} aria-invalid={grantField.includes("member") || undefined}>
              {all.map((m) => (
                <option key={m.id} value={m.id}>
                  {who(m)}
                </option>
              ))}
            </select>
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Role</span>
            <select className={input} value={grantRoleValue} onChange={(e) => setGrantRoleValue(e.target.value as RoleJson)} aria-invalid={grantField.includes("role") || undefined}>
              {Object.entries(roles).map(([k, v]) => (
                <option key={k} value={k}>
                  {v}
                </option>
              ))}
            </select>
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Scope</span>
            <select className={input} value={grantScope} onChange={(e) => setGrantScope(e.target.value)} aria-invalid={grantField.includes("scope") || undefined}>
              {scopes.map((s) => (
                <option key={s.value} value={s.value}>
                  {s.label}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className={btnPrimary} disabled={grant.isPending || !memberId || !canGrant.allowed} aria-describedby={canGrant.allowed ? undefined : "grant-denied"}>
            Grant role
          </button>
          <Denied can={canGrantHere.allowed ? canGrant : canGrantHere} id="grant-denied" />
        </fieldset>
        <p role="status" className="text-sm">
          {notice}
        </p>
        <ErrorMessage error={grant.error} />
      </form>
      <form
        className="mt-3"
        aria-label="Add a member"
        onSubmit={(e) => {
          e.preventDefault();
          createMember.mutate({ email, role }, { onSuccess: () => setEmail("") });
        }}
      >
        <fieldset className="flex flex-wrap items-end gap-3" {...deniedProps(canAdd, "member-denied")}>
          <legend className="mb-1 text-sm font-semibold">Add a member</legend>
          <label className="flex flex-col gap-1">
            <span className={label}>Email</span>
            <input
              className={input}
              type="email"
              required
              value={email}
              onChange={(e) => setEmail(e.target.value)}
              aria-invalid={(createMember.error instanceof ApiError && !!createMember.error.field) || undefined}
            />
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Role in the organization</span>
            <select className={input} value={role} onChange={(e) => setRole(e.target.value as RoleJson)}>
              {Object.entries(roles).map(([k, v]) => (
                <option key={k} value={k}>
                  {v}
                </option>
              ))}
            </select>
          </label>
          <button type="submit" className={btnPrimary} disabled={createMember.isPending || !canAdd.allowed}>
            Add member
          </button>
          <Denied can={canAdd} id="member-denied" />
        </fieldset>
      </form>
      <ErrorMessage error={members.error ?? bindings.error ?? createMember.error} />
    </section>
  );
}
