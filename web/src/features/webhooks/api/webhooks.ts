import { queryOptions, useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import type {
  CreateWebhookResponseJson,
  ListWebhookDeliveriesResponseJson,
  ListWebhooksResponseJson,
  RedeliverWebhookDeliveryResponseJson,
  SendTestWebhookResponseJson,
} from "../../../gen/flagforge/admin/v1/webhook_pb";
import { api, enc } from "../../../lib/api";

const base = (org: string, project: string) => `/v1/orgs/${enc(org)}/projects/${enc(project)}/webhooks`;

export const listWebhooks = (org: string, project: string) => api<ListWebhooksResponseJson>("GET", `${base(org, project)}?pageSize=1000`);
export const listDeliveries = (org: string, project: string, id: string) =>
  api<ListWebhookDeliveriesResponseJson>("GET", `${base(org, project)}/${enc(id)}/deliveries?pageSize=50`);
export const createWebhook = (org: string, project: string, url: string, eventTypes: string[]) =>
  api<CreateWebhookResponseJson>("POST", base(org, project), { webhook: { url, eventTypes } });
export const enableWebhook = (org: string, project: string, id: string) => api<unknown>("POST", `${base(org, project)}/${enc(id)}:enable`, {});
export const sendTestWebhook = (org: string, project: string, id: string) =>
  api<SendTestWebhookResponseJson>("POST", `${base(org, project)}/${enc(id)}:test`, {});
export const redeliver = (org: string, project: string, id: string, deliveryId: string) =>
  api<RedeliverWebhookDeliveryResponseJson>("POST", `${base(org, project)}/${enc(id)}/deliveries/${enc(deliveryId)}:redeliver`, {});
export const deleteWebhook = (org: string, project: string, id: string) => api<unknown>("DELETE", `${base(org, project)}/${enc(id)}`);

export const listWebhooksOptions = (org: string, project: string) =>
  queryOptions({ queryKey: ["webhooks", org, project], queryFn: () => listWebhooks(org, project) });
export const useWebhooks = (org: string, project: string, enabled = true) => useQuery({ ...listWebhooksOptions(org, project), enabled });

// useDeliveries polls a webhook's delivery log while it is shown (deliveries are
// retried in the background and are not in the change stream).
export const useDeliveries = (org: string, project: string, id: string) =>
  useQuery({ queryKey: ["webhook-deliveries", org, project, id], queryFn: () => listDeliveries(org, project, id), refetchInterval: 2000 });

export function useWebhookMutation<I, O>(org: string, project: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => void qc.invalidateQueries({ queryKey: ["webhooks", org, project] }) });
}

// useDeliveryMutation sends a test or a redelivery and refreshes that webhook's log.
export function useDeliveryMutation<I, O>(org: string, project: string, hookId: string, fn: (i: I) => Promise<O>) {
  const qc = useQueryClient();
  return useMutation({ mutationFn: fn, onSuccess: () => void qc.invalidateQueries({ queryKey: ["webhook-deliveries", org, project, hookId] }) });
}
