// OFREP conformance with OpenFeature's own providers, not our reading of the spec:
// @openfeature/ofrep-provider (Node, server SDK) and @openfeature/ofrep-web-provider
// (Chromium, web SDK) evaluate every reason against a real evaluator fed by a real
// control plane, with the same results as POST /v1/evaluate; an unchanged bulk
// request is answered 304.
import { OFREPProvider } from '@openfeature/ofrep-provider';
import { OpenFeature } from '@openfeature/server-sdk';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { launch, openPage, PageServer } from './browser.js';
import { createReasonFlags, Platform, reasonCases } from './platform.js';

let platform: Platform;
let pages: PageServer;
let browser: Browser;
const errors: string[] = [];

beforeAll(async () => {
  pages = new PageServer();
  await pages.start();
  platform = new Platform({ bin: inject('bin'), corsOrigins: pages.origin });
  await platform.start();
  await createReasonFlags(platform);
  browser = await launch(inject('chromium'));
});

afterAll(async () => {
  await OpenFeature.close();
  await browser?.close();
  await platform?.stop();
  await pages?.stop();
  expect(errors).toEqual([]);
});

/** What /v1/evaluate answers, in the shape an OpenFeature client reports it. */
async function expected(key: string, flag: string, context: object) {
  const r = await platform.evaluate(key, flag, context, true);
  return {
    value: r.value,
    variant: r.variant,
    reason: r.reason,
    errorCode: r.errorCode,
    ruleId: r.ruleId,
    manifestVersion: Number(r.manifestVersion),
  };
}

const shape = (d: any) => ({
  value: d.value,
  variant: d.variant,
  reason: d.reason,
  errorCode: d.errorCode,
  ruleId: d.flagMetadata?.ruleId,
  manifestVersion: d.flagMetadata?.manifestVersion,
});

describe('@openfeature/ofrep-provider (Node)', () => {
  it.each(reasonCases)('$flag: $reason as /v1/evaluate says', async (c) => {
    await OpenFeature.setProviderAndWait('ofrep-node', new OFREPProvider({ baseUrl: platform.evalURL, headers: [['Authorization', 'Bearer ' + platform.serverKey]] }));
    const got = await OpenFeature.getClient('ofrep-node').getBooleanDetails(c.flag, true, c.context);
    const want = await expected(platform.serverKey, c.flag, c.context);
    expect(want.reason).toBe(c.reason);
    // On an error the Node provider reports no metadata (the 404 body has none).
    if (c.reason == 'ERROR') want.manifestVersion = undefined as unknown as number;
    expect(shape(got)).toEqual(want);
  });
});

describe('@openfeature/ofrep-web-provider (Chromium)', () => {
  it('evaluates every reason as /v1/evaluate says, and polls with If-None-Match for 304', async () => {
    const page = await openPage(browser, pages.origin, errors, true);
    const bulk: number[] = [];
    page.on('response', (r) => r.url().endsWith('/ofrep/v1/evaluate/flags') && bulk.push(r.status()));
    await page.evaluate(
      async ({ url, key, context }) => {
        const of = (window as any).of;
        await of.OpenFeature.setContext(context);
        await of.OpenFeature.setProviderAndWait(new of.OFREPWebProvider({ baseUrl: url, headers: [['Authorization', 'Bearer ' + key]], pollInterval: 300, cacheMode: 'disabled', changeDetection: 'polling' }));
      },
      { url: platform.evalURL, key: platform.clientKey, context: reasonCases[0].context },
    );
    for (const c of reasonCases) {
      const got = await page.evaluate(async ({ flag, context }) => {
        const of = (window as any).of;
        await of.OpenFeature.setContext(context);
        return of.OpenFeature.getClient().getBooleanDetails(flag, true);
      }, c);
      const want = await expected(platform.clientKey, c.flag, c.context);
      expect(want.reason).toBe(c.reason);
      expect({ flag: c.flag, ...shape(got) }).toEqual({ flag: c.flag, ...want });
    }
    // Unchanged: the provider's polls are answered 304.
    await page.waitForTimeout(1000);
    expect(bulk).toContain(304);
    // Changed via the admin API: the next poll gets 200 and the new value.
    const before = bulk.length;
    await platform.setConfig('static', { on: true, offVariant: 'off', defaultServe: { variant: 'off' } });
    await page.waitForFunction(() => (window as any).of.OpenFeature.getClient().getBooleanValue('static', true) === false, null, { timeout: 10000 });
    expect(bulk.slice(before)).toContain(200);
    await page.close();
  });
});

describe('@openfeature/ofrep-web-provider with the event stream', () => {
  it('hears of a change over /ofrep/v1/events and re-fetches at once (no polling)', async () => {
    const page = await openPage(browser, pages.origin, errors, true);
    const events: string[] = [];
    page.on('request', (r) => r.url().includes('/ofrep/v1/events') && events.push(r.url()));
    await page.evaluate(
      async ({ url, key }) => {
        const of = (window as any).of;
        await of.OpenFeature.setContext({ targetingKey: 'user-1' });
        // Default change detection ('sse'), default 30 s poll interval.
        await of.OpenFeature.setProviderAndWait(new of.OFREPWebProvider({ baseUrl: url, headers: [['Authorization', 'Bearer ' + key]], cacheMode: 'disabled' }));
      },
      { url: platform.evalURL, key: platform.clientKey },
    );
    for (let i = 0; i < 50 && events.length == 0; i++) await page.waitForTimeout(100);
    expect(events.length).toBeGreaterThan(0);
    await page.waitForTimeout(300); // the stream is open
    const before = await page.evaluate(() => (window as any).of.OpenFeature.getClient().getBooleanValue('static', false));
    const sent = Date.now();
    await platform.setConfig('static', { on: true, offVariant: 'off', defaultServe: { variant: before ? 'off' : 'on' } });
    await page.waitForFunction((want) => (window as any).of.OpenFeature.getClient().getBooleanValue('static', !want) === want, !before, { timeout: 5000, polling: 'raf' });
    const ms = Date.now() - sent;
    expect(ms).toBeLessThan(1000);
    await page.close();
  });
});

describe('OFREP errors seen by a browser', () => {
  it('answers 401 for an unknown key and 403 for a server key', async () => {
    const page = await openPage(browser, pages.origin, errors);
    const got = await page.evaluate(async ({ url, keys }) => {
      const out = [];
      for (const k of keys) {
        const r = await fetch(url + '/ofrep/v1/evaluate/flags/static', { method: 'POST', headers: { Authorization: 'Bearer ' + k, 'Content-Type': 'application/json' }, body: '{}' });
        out.push([r.status, await r.json()]);
      }
      return out;
    }, { url: platform.evalURL, keys: ['nope', platform.serverKey] });
    expect(got[0][0]).toBe(401);
    expect(got[1]).toEqual([403, { errorDetails: 'a server SDK key must not be used from a browser: use a client SDK key' }]);
    await page.close();
  });
});

