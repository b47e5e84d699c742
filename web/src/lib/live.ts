import { useQueryClient, type QueryClient } from "@tanstack/react-query";
import { useEffect, useState } from "react";
import { getToken } from "./session";

// A change as the control plane's event stream reports it (GET /v1/orgs/{org}/events).
export type Change = {
  sequence: string;
  action: string;
  resource: string;
  resourceType: string;
  actorId: string;
  actorName: string;
  time: string;
  comment?: string;
};

// invalidate refreshes exactly the queries a change touches (and the audit log).
export function invalidate(qc: QueryClient, org: string, c: Change): void {
  void qc.invalidateQueries({ queryKey: ["audit", org] });
  const p = c.resource.split("/"); // projects/{p}/environments/{e}/flags/{f}, projects/{p}/flags/{f}, ...
  if (p[0] !== "projects" || !p[1]) {
    void qc.invalidateQueries();
    return;
  }
  const project = p[1];
  if (p[2] === "environments" && p[3]) {
    const env = p[3];
    switch (p[4]) {
      case "flags":
        void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flag-configs", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flags", org, project, "search"] });
        return;
      case "change_requests":
      case "change-requests":
        void qc.invalidateQueries({ queryKey: ["change-requests", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["change-request", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flag-config", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flag-configs", org, project, env] });
        void qc.invalidateQueries({ queryKey: ["flags", org, project, "search"] });
        return;
      case "sdk_keys":
        void qc.invalidateQueries({ queryKey: ["sdk-keys", org, project, env] });
        return;
    }
    void qc.invalidateQueries({ queryKey: ["environments", org, project] });
    return;
  }
  if (p[2] === "flags") {
    void qc.invalidateQueries({ queryKey: ["flags", org, project] });
    void qc.invalidateQueries({ queryKey: ["flag", org, project] });
    void qc.invalidateQueries({ queryKey: ["flag-configs", org, project] });
    void qc.invalidateQueries({ queryKey: ["flag-config", org, project] });
    return;
  }
  void qc.invalidateQueries({ queryKey: ["projects", org] });
  void qc.invalidateQueries({ queryKey: ["environments", org, project] });
}

// parse splits a text/event-stream chunk buffer into complete events.
function parse(buf: string): { events: { event: string; data: string }[]; rest: string } {
  const events: { event: string; data: string }[] = [];
  let rest = buf;
  let i: number;
  while ((i = rest.indexOf("\n\n")) >= 0) {
    const block = rest.slice(0, i);
    rest = rest.slice(i + 2);
    let event = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) event = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (data) events.push({ event, data });
  }
  return { events, rest };
}

// useLiveChanges follows the organization's change stream while the page is open
// (fetch, so the token goes in the Authorization header, never in a URL),
// invalidates what each change touches, and returns the latest change for the
// "changed by X just now" notice. It reconnects with backoff.
export function useLiveChanges(org: string): Change | null {
  const qc = useQueryClient();
  const [last, setLast] = useState<Change | null>(null);
  useEffect(() => {
    const ctl = new AbortController();
    let delay = 1000;
    let lastId = "";
    async function run() {
      while (!ctl.signal.aborted) {
        try {
          const headers: Record<string, string> = { Accept: "text/event-stream", Authorization: `Bearer ${getToken() ?? ""}` };
          if (lastId) headers["Last-Event-ID"] = lastId;
          const res = await fetch(`/v1/orgs/${encodeURIComponent(org)}/events`, { headers, signal: ctl.signal });
          if (res.status === 401 || res.status === 403 || !res.body) return;
          const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
          let buf = "";
          delay = 1000;
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            const r = parse(buf + value);
            buf = r.rest;
            for (const ev of r.events) {
              if (ev.event === "change") {
                const c = JSON.parse(ev.data) as Change;
                lastId = c.sequence;
                invalidate(qc, org, c);
                setLast(c);
              } else if (ev.event === "reset") {
                void qc.invalidateQueries();
              } else if (ev.event === "error") {
                return;
              }
            }
          }
        } catch {
          if (ctl.signal.aborted) return;
        }
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 30000);
      }
    }
    void run();
    return () => ctl.abort();
  }, [org, qc]);
  return last;
}
