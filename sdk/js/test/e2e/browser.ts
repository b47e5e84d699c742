// A page origin serving the SDK bundles, and headless Chromium (the Debian
// package) driven by playwright-core.
import { build } from 'esbuild';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';

const here = fileURLToPath(new URL('.', import.meta.url));

/** The bundles the pages import: /sdk.js (the core) and /openfeature.js. */
async function bundles(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, entry] of [
    ['/sdk.js', here + '../../src/index.ts'],
    ['/openfeature.js', here + 'openfeature-entry.ts'],
  ]) {
    const r = await build({
      entryPoints: [entry], bundle: true, format: 'esm', target: 'es2020', write: false, logLevel: 'silent',
      define: { 'process.env.NODE_ENV': '"production"' },
    });
    out[name] = r.outputFiles[0].text;
  }
  return out;
}

/** An HTTP origin on 127.0.0.1 serving an empty page and the bundles. */
export class PageServer {
  server?: Server;
  origin = '';
  private pages: Record<string, string> = {};
  /** Serves html at path (e.g. a page taken from the docs). */
  addPage(path: string, html: string) {
    this.pages[path] = html;
  }
  async start() {
    const files = await bundles();
    files['/flagforge.min.js'] = files['/sdk.js']; // the docs' page imports it by this name
    this.server = createServer((req, res) => {
      const js = files[req.url ?? ''];
      if (js) {
        res.writeHead(200, { 'Content-Type': 'text/javascript' });
        res.end(js);
        return;
      }
      const page = this.pages[req.url ?? ''];
      if (page) {
        res.writeHead(200, { 'Content-Type': 'text/html' });
        res.end(page);
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/html' });
      res.end('<!doctype html><html lang="en"><title>FlagForge e2e</title><body><main id="root"></main></body></html>');
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    const a = this.server.address();
    this.origin = `http://127.0.0.1:${typeof a == 'object' && a ? a.port : 0}`;
  }
  async stop() {
    await new Promise((r) => this.server?.close(r));
  }
}

/** Launches headless Chromium at path with the flags known to work here. */
export function launch(path: string): Promise<Browser> {
  return chromium.launch({
    executablePath: path,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
}

/** A new page on origin with the bundles imported as window.sdk (the core) and,
 * with openfeature, window.of; uncaught page errors are collected in errors. */
export async function openPage(browser: Browser, origin: string, errors: string[], openfeature = false): Promise<Page> {
  const page = await browser.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(origin + '/');
  // Imports are written in the page, not in functions passed to evaluate (the test
  // runner rewrites import() in test code).
  await page.addScriptTag({
    type: 'module',
    content: "import * as sdk from '/sdk.js'; window.sdk = sdk;" + (openfeature ? " import * as of from '/openfeature.js'; window.of = of;" : ''),
  });
  await page.waitForFunction((of) => (window as any).sdk && (!of || (window as any).of), openfeature);
  return page;
}
