import { lazy, Suspense, useSyncExternalStore } from "react";
import { OidcCallback } from "../features/auth/components/OidcCallback";
import { Reauth } from "../features/auth/components/Reauth";
import { SignIn } from "../features/auth/components/SignIn";
import { match, useLocation } from "../lib/router";
import { getToken, isExpired } from "../lib/session";
import { Home } from "./Home";
import { Layout } from "./Layout";

// Pages load on demand: the initial bundle holds the shell and the sign-in form.
const FlagsList = lazy(() => import("../features/flags/components/FlagsList"));
const FlagPage = lazy(() => import("../features/flags/components/FlagPage"));
const Playground = lazy(() => import("../features/playground/components/Playground"));
const AuditLog = lazy(() => import("../features/audit/components/AuditLog"));
const SeenContexts = lazy(() => import("../features/contexts/components/SeenContexts"));
const Settings = lazy(() => import("../features/admin/components/Settings"));
const Segments = lazy(() => import("../features/segments/components/Segments"));
const Webhooks = lazy(() => import("../features/webhooks/components/Webhooks"));
const Schedules = lazy(() => import("../features/schedules/components/Schedules"));
const SdkKeys = lazy(() => import("../features/keys/components/SdkKeys"));
const ChangeRequests = lazy(() => import("../features/approvals/components/ChangeRequests"));
const ChangeRequestPage = lazy(() => import("../features/approvals/components/ChangeRequestPage"));
const FlagHistory = lazy(() => import("../features/history/components/FlagHistory"));
const EnvironmentRollback = lazy(() => import("../features/history/components/EnvironmentRollback"));
const ReleasePlanPage = lazy(() => import("../features/releases/components/ReleasePlanPage"));

function subscribe(cb: () => void) {
  window.addEventListener("flagforge:session", cb);
  return () => window.removeEventListener("flagforge:session", cb);
}

export function App() {
  const token = useSyncExternalStore(subscribe, getToken);
  const expired = useSyncExternalStore(subscribe, isExpired);
  const loc = useLocation();
  if (loc.pathname === "/auth/callback") return <OidcCallback />;
  if (!token) return <SignIn />;
  return (
    <>
      <Routes path={loc.pathname} />
      {expired && <Reauth />}
    </>
  );
}

// Routes renders the page of a path (signed in).
function Routes({ path }: { path: string }) {
  let m: Record<string, string> | null;
  let page = null;
  if ((m = match("/o/:org/p/:project/flags", path))) page = <FlagsList org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/flags/:flag/:env", path)))
    page = <FlagPage key={`${m.flag}/${m.env}`} org={m.org} project={m.project} flag={m.flag} env={m.env} />;
  else if ((m = match("/o/:org/p/:project/flags/:flag/:env/history", path)))
    page = <FlagHistory key={`${m.flag}/${m.env}`} org={m.org} project={m.project} flag={m.flag} env={m.env} />;
  else if ((m = match("/o/:org/p/:project/rollback", path))) page = <EnvironmentRollback org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/releases/:flag/:env", path)))
    page = <ReleasePlanPage key={`${m.flag}/${m.env}`} org={m.org} project={m.project} flag={m.flag} env={m.env} />;
  else if ((m = match("/o/:org/p/:project/playground", path))) page = <Playground org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/audit", path))) page = <AuditLog org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/settings", path))) page = <Settings org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/segments", path))) page = <Segments org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/webhooks", path))) page = <Webhooks org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/schedules", path))) page = <Schedules org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/keys", path))) page = <SdkKeys org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/contexts", path))) page = <SeenContexts org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/changes", path))) page = <ChangeRequests org={m.org} project={m.project} />;
  else if ((m = match("/o/:org/p/:project/changes/:env/:id", path)))
    page = <ChangeRequestPage key={m.id} org={m.org} project={m.project} env={m.env} id={m.id} />;
  else if (path === "/") return <Home />;
  if (!m || !page)
    return (
      <main className="p-6">
        <h1 className="text-xl font-bold">Page not found</h1>
        <a className="text-blue-800 underline" href="/">
          Go to the flags list
        </a>
      </main>
    );
  return (
    <Layout org={m.org} project={m.project}>
      <Suspense fallback={<p aria-busy="true">Loading…</p>}>{page}</Suspense>
    </Layout>
  );
}
