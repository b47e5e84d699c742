import { useEffect } from "react";
import { ErrorMessage } from "../components/ErrorMessage";
import { useOrgs } from "../features/auth/api/list-orgs";
import { useProjects } from "../features/projects/api/list-projects";
import { navigate } from "../lib/router";
import { getOrg } from "../lib/session";

// Home sends a signed-in user to the first project of their organization (an
// OIDC session's own; an API token's first).
export function Home() {
  const ssoOrg = getOrg();
  const orgs = useOrgs(!ssoOrg);
  const org = ssoOrg || (orgs.data?.organizations?.[0]?.key ?? "");
  const projects = useProjects(org);
  const project = projects.data?.projects?.[0]?.key;
  useEffect(() => {
    if (org && project) navigate(`/o/${encodeURIComponent(org)}/p/${encodeURIComponent(project)}/flags`, { replace: true });
  }, [org, project]);
  if (orgs.error || projects.error) return <main className="p-6"><ErrorMessage error={orgs.error ?? projects.error} /></main>;
  if (projects.data && !project)
    return (
      <main className="p-6">
        <h1 className="text-xl font-bold">No project yet</h1>
        <p>Create one with the API: POST /v1/orgs/{org}/projects.</p>
      </main>
    );
  return <main className="p-6" aria-busy="true">Loading…</main>;
}
