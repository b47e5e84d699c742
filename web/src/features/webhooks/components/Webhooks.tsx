import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { Secret } from "../../../components/Secret";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { WebhookJson } from "../../../gen/flagforge/admin/v1/webhook_pb";
import { ApiError } from "../../../lib/api";
import { createWebhook, deleteWebhook, enableWebhook, useDeliveries, useWebhookMutation, useWebhooks } from "../api/webhooks";

const deliveryState: Record<string, string> = {
  WEBHOOK_DELIVERY_STATE_PENDING: "pending",
  WEBHOOK_DELIVERY_STATE_SUCCEEDED: "delivered",
  WEBHOOK_DELIVERY_STATE_RETRYING: "retrying",
  WEBHOOK_DELIVERY_STATE_FAILED: "failed",
};

function Deliveries({ org, project, hook }: { org: string; project: string; hook: WebhookJson }) {
  const d = useDeliveries(org, project, hook.id ?? "");
  return (
    <div className="mt-2">
      <ErrorMessage error={d.error} />
      <table className="w-full text-xs">
        <caption className="text-left font-semibold">Deliveries of {hook.url}</caption>
        <thead>
          <tr className="text-left">
            <th scope="col">Time (UTC)</th>
            <th scope="col">Event</th>
            <th scope="col">State</th>
            <th scope="col">Attempts</th>
            <th scope="col">HTTP status</th>
            <th scope="col">Error</th>
          </tr>
        </thead>
        <tbody>
          {(d.data?.deliveries ?? []).map((x) => (
            <tr key={x.id} className="border-t border-slate-200 dark:border-slate-800">
              <td>{(x.createTime ?? "").slice(0, 19).replace("T", " ")}</td>
              <td className="font-mono">{x.eventType}</td>
              <td>{deliveryState[String(x.state)] ?? String(x.state ?? "").replace("WEBHOOK_DELIVERY_STATE_", "").toLowerCase()}</td>
              <td>{x.attempts ?? 0}</td>
              <td>{x.lastStatusCode ?? ""}</td>
              <td>{x.lastError}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.data && (d.data.deliveries ?? []).length === 0 && <p className="text-xs">No delivery yet.</p>}
    </div>
  );
}

// Webhooks manages the project's webhooks: URL, event types, the signing secret
// (shown once), state (disabled after too many failures, with the reason; Enable),
// and each webhook's delivery log.
export default function Webhooks({ org, project }: { org: string; project: string }) {
  const hooks = useWebhooks(org, project);
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState("");
  const [shown, setShown] = useState<{ title: string; secret: string } | null>(null);
  const [open, setOpen] = useState("");
  const [confirming, setConfirming] = useState("");
  const create = useWebhookMutation(org, project, (i: { url: string; eventTypes: string[] }) => createWebhook(org, project, i.url, i.eventTypes));
  const enable = useWebhookMutation(org, project, (id: string) => enableWebhook(org, project, id));
  const del = useWebhookMutation(org, project, (id: string) => deleteWebhook(org, project, id));
  const field = create.error instanceof ApiError ? create.error.field ?? "" : "";
  function submit(e: FormEvent) {
    e.preventDefault();
    const eventTypes = events.split(",").map((s) => s.trim()).filter(Boolean);
    create.mutate({ url, eventTypes }, { onSuccess: (r) => { setShown({ title: `Signing secret of ${r.webhook?.url ?? url}`, secret: r.secret ?? "" }); setUrl(""); setEvents(""); } });
  }
  return (
    <section aria-labelledby="wh-title" className="flex flex-col gap-4">
      <h1 id="wh-title" className="text-2xl font-bold">
        Webhooks
      </h1>
      {shown && <Secret title={shown.title} secret={shown.secret} onDone={() => setShown(null)} />}
      <form onSubmit={submit} className={`${card} flex flex-wrap items-end gap-3`} aria-label="New webhook">
        <label className="flex flex-col gap-1">
          <span className={label}>Webhook URL</span>
          <input className={`${input} w-96`} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} aria-invalid={field.includes("url") || undefined} />
        </label>
        <label className="flex flex-col gap-1">
          <span className={label}>Event types (comma separated; empty: all)</span>
          <input className={`${input} w-72`} value={events} onChange={(e) => setEvents(e.target.value)} aria-invalid={field.includes("event_types") || undefined} placeholder="flag.config.updated" />
        </label>
        <button type="submit" className={btnPrimary} disabled={create.isPending}>
          Create webhook
        </button>
      </form>
      <ErrorMessage error={hooks.error ?? create.error ?? enable.error ?? del.error} />
      <ul className="flex flex-col gap-3">
        {(hooks.data?.webhooks ?? []).map((h) => (
          <li key={h.id} className={card}>
            <div className="flex flex-wrap items-center gap-2">
              <span className="font-mono font-semibold">{h.url}</span>
              <span className="text-sm">
                {h.enabled ? "enabled" : `disabled${h.disabledReason ? `: ${h.disabledReason}` : ""}`} · events {(h.eventTypes ?? []).join(", ") || "all"} · {h.failureCount ?? 0} consecutive failures (disabled at {h.maxFailures})
              </span>
              <span className="ml-auto flex gap-1">
                <button type="button" className={btn} aria-expanded={open === h.id} onClick={() => setOpen(open === h.id ? "" : h.id ?? "")}>
                  Deliveries<span className="sr-only"> of {h.url}</span>
                </button>
                {!h.enabled && (
                  <button type="button" className={btn} onClick={() => enable.mutate(h.id ?? "")}>
                    Enable<span className="sr-only"> {h.url}</span>
                  </button>
                )}
                {confirming === h.id ? (
                  <button type="button" className={btnDanger} onClick={() => del.mutate(h.id ?? "", { onSuccess: () => setConfirming("") })}>
                    Confirm delete<span className="sr-only"> {h.url}</span>
                  </button>
                ) : (
                  <button type="button" className={btn} onClick={() => setConfirming(h.id ?? "")}>
                    Delete<span className="sr-only"> {h.url}</span>
                  </button>
                )}
              </span>
            </div>
            {open === h.id && <Deliveries org={org} project={project} hook={h} />}
          </li>
        ))}
      </ul>
    </section>
  );
}
