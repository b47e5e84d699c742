import { useState, type FormEvent } from "react";
import { ErrorMessage } from "../../../components/ErrorMessage";
import { Secret } from "../../../components/Secret";
import { btn, btnDanger, btnPrimary, card, input, label } from "../../../components/ui";
import type { WebhookJson } from "../../../gen/flagforge/admin/v1/webhook_pb";
import { ApiError } from "../../../lib/api";
import { useCan, type Can } from "../../permissions/api/permissions";
import { Denied, deniedProps } from "../../permissions/components/Denied";
import {
  createWebhook,
  deleteWebhook,
  enableWebhook,
  redeliver,
  sendTestWebhook,
  useDeliveries,
  useDeliveryMutation,
  useWebhookMutation,
  useWebhooks,
} from "../api/webhooks";

const deliveryState: Record<string, string> = {
  WEBHOOK_DELIVERY_STATE_PENDING: "pending",
  WEBHOOK_DELIVERY_STATE_SUCCEEDED: "delivered",
  WEBHOOK_DELIVERY_STATE_RETRYING: "retrying",
  WEBHOOK_DELIVERY_STATE_FAILED: "failed",
};

const stateName = (s?: string) => deliveryState[String(s)] ?? String(s ?? "").replace("WEBHOOK_DELIVERY_STATE_", "").toLowerCase();

function Deliveries({ org, project, hook, canWrite }: { org: string; project: string; hook: WebhookJson; canWrite: Can }) {
  const id = hook.id ?? "";
  const d = useDeliveries(org, project, id);
  const again = useDeliveryMutation(org, project, id, (deliveryId: string) => redeliver(org, project, id, deliveryId));
  const [notice, setNotice] = useState("");
  const reasonId = `wh-denied-redeliver-${id}`;
  return (
    <div className="mt-2 overflow-x-auto">
      <ErrorMessage error={d.error ?? again.error} />
      <p role="status" className="text-sm">{notice}</p>
      <Denied can={canWrite} id={reasonId} />
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
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {(d.data?.deliveries ?? []).map((x) => (
            <tr key={x.id} className="border-t border-slate-200 dark:border-slate-800">
              <td>{(x.createTime ?? "").slice(0, 19).replace("T", " ")}</td>
              <td className="font-mono">{x.eventType}</td>
              <td>{stateName(x.state)}</td>
              <td>{x.attempts ?? 0}</td>
              <td>{x.lastStatusCode ?? ""}</td>
              <td>{x.lastError}</td>
              <td>
                {x.state !== "WEBHOOK_DELIVERY_STATE_PENDING" && (
                  <button
                    type="button"
                    className={btn}
                    disabled={again.isPending}
                    {...deniedProps(canWrite, reasonId)}
                    onClick={() =>
                      again.mutate(x.id ?? "", { onSuccess: () => setNotice(`Delivery of ${x.eventType} queued again: its row shows the new attempt.`) })
                    }
                  >
                    Redeliver<span className="sr-only"> {x.eventType} of {(x.createTime ?? "").slice(0, 19)}</span>
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {d.data && (d.data.deliveries ?? []).length === 0 && <p className="text-xs">No delivery yet.</p>}
    </div>
  );
}

function Hook({ org, project, h, canWrite }: { org: string; project: string; h: WebhookJson; canWrite: Can }) {
  const id = h.id ?? "";
  const [open, setOpen] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const [notice, setNotice] = useState("");
  const enable = useWebhookMutation(org, project, () => enableWebhook(org, project, id));
  const del = useWebhookMutation(org, project, () => deleteWebhook(org, project, id));
  const test = useDeliveryMutation(org, project, id, () => sendTestWebhook(org, project, id));
  const reasonId = `wh-denied-${id}`;
  return (
    <li className={card}>
      <div className="flex flex-wrap items-center gap-2">
        <span className="break-all font-mono font-semibold">{h.url}</span>
        <span className="text-sm">
          {h.enabled ? "enabled" : `disabled${h.disabledReason ? `: ${h.disabledReason}` : ""}`} · events {(h.eventTypes ?? []).join(", ") || "all"} · {h.failureCount ?? 0} consecutive failures (disabled at {h.maxFailures})
        </span>
        <span className="ml-auto flex flex-wrap gap-1">
          <button type="button" className={btn} aria-expanded={open} onClick={() => setOpen(!open)}>
            Deliveries<span className="sr-only"> of {h.url}</span>
          </button>
          <button
            type="button"
            className={btn}
            disabled={test.isPending || !h.enabled}
            {...deniedProps(canWrite, reasonId)}
            onClick={() => test.mutate(undefined, { onSuccess: () => { setOpen(true); setNotice(`Test delivery sent to ${h.url}: its result shows in the delivery log.`); } })}
          >
            Send test<span className="sr-only"> to {h.url}</span>
          </button>
          {!h.enabled && (
            <button type="button" className={btn} {...deniedProps(canWrite, reasonId)} onClick={() => enable.mutate(undefined)}>
              Enable<span className="sr-only"> {h.url}</span>
            </button>
          )}
          {confirming ? (
            <button type="button" className={btnDanger} onClick={() => del.mutate(undefined, { onSuccess: () => setConfirming(false) })}>
              Confirm delete<span className="sr-only"> {h.url}</span>
            </button>
          ) : (
            <button type="button" className={btn} {...deniedProps(canWrite, reasonId)} onClick={() => setConfirming(true)}>
              Delete<span className="sr-only"> {h.url}</span>
            </button>
          )}
        </span>
        <Denied can={canWrite} id={reasonId} />
      </div>
      <p role="status" className="text-sm">{notice}</p>
      <ErrorMessage error={test.error ?? enable.error ?? del.error} />
      {open && <Deliveries org={org} project={project} hook={h} canWrite={canWrite} />}
    </li>
  );
}

// Webhooks manages the project's webhooks: URL, event types, the signing secret
// (shown once), state (disabled after too many failures, with the reason; Enable),
// Send test, and each webhook's delivery log with Redeliver. What the caller's
// role may not do is disabled with the reason (the server refuses it anyway).
export default function Webhooks({ org, project }: { org: string; project: string }) {
  const canRead = useCan(org, "webhook", "read", project);
  const canWrite = useCan(org, "webhook", "write", project);
  const hooks = useWebhooks(org, project, canRead.allowed);
  const [url, setUrl] = useState("");
  const [events, setEvents] = useState("");
  const [shown, setShown] = useState<{ title: string; secret: string } | null>(null);
  const create = useWebhookMutation(org, project, (i: { url: string; eventTypes: string[] }) => createWebhook(org, project, i.url, i.eventTypes));
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
      <form onSubmit={submit} className={card} aria-label="New webhook">
        <fieldset className="flex flex-wrap items-end gap-3" {...deniedProps(canWrite, "wh-denied-create")}>
          <legend className="sr-only">New webhook</legend>
          <label className="flex flex-col gap-1">
            <span className={label}>Webhook URL</span>
            <input className={`${input} w-full sm:w-96`} type="url" required value={url} onChange={(e) => setUrl(e.target.value)} aria-invalid={field.includes("url") || undefined} />
          </label>
          <label className="flex flex-col gap-1">
            <span className={label}>Event types (comma separated; empty: all)</span>
            <input className={`${input} w-full sm:w-72`} value={events} onChange={(e) => setEvents(e.target.value)} aria-invalid={field.includes("event_types") || field.includes("eventTypes") || undefined} placeholder="flag.config.updated" />
          </label>
          <button type="submit" className={btnPrimary} disabled={create.isPending || !canWrite.allowed}>
            Create webhook
          </button>
          <Denied can={canWrite} id="wh-denied-create" />
        </fieldset>
        <ErrorMessage error={create.error} />
      </form>
      {!canRead.allowed ? (
        <p className="text-sm" data-testid="denied-reason">
          <span aria-hidden="true">🔒 </span>The webhooks are not listed: {canRead.reason}
        </p>
      ) : (
        <ErrorMessage error={hooks.error} />
      )}
      <ul className="flex flex-col gap-3">
        {(hooks.data?.webhooks ?? []).map((h) => (
          <Hook key={h.id} org={org} project={project} h={h} canWrite={canWrite} />
        ))}
      </ul>
    </section>
  );
}
