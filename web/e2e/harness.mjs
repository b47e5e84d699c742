// Test harness of the console's browser tests: a real control plane and evaluator
// (the built binaries in ../bin, free ports, SQLite in a temporary folder), the
// Debian Chromium driven by playwright-core, axe-core checks and screenshots.
import AxeBuilder from "@axe-core/playwright";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const root = path.resolve(import.meta.dirname, "../..");
const bin = path.join(root, "bin");
export const artifacts = path.join(root, "web", "artifacts");

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// eventually retries fn until it returns without throwing (at most ms).
export async function eventually(fn, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(100);
    }
  }
}

function startProcess(name, file, args, env, logDir) {
  const log = fs.openSync(path.join(logDir, `${name}.log`), "a");
  const p = spawn(file, args, { env: { ...process.env, ...env }, stdio: ["ignore", log, log] });
  const exited = new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
  return { p, exited, log: path.join(logDir, `${name}.log`) };
}

async function waitReady(url, proc, what) {
  let done = false;
  void proc.exited.then(() => (done = true));
  for (let i = 0; i < 300; i++) {
    if (done) throw new Error(`${what} exited; log: ${fs.readFileSync(proc.log, "utf8").slice(-2000)}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      /* not yet */
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready after 30 s (${url})`);
}

// startPlatform starts a control plane (organization "acme", project "web" with
// development, staging and production) and an evaluator following it, and server
// SDK keys for staging and production. With opts.oidc ({ tokenTTL: "20s" }) it
// first starts the test OIDC provider (bin/flagforge-testidp) and configures the
// control plane for it (client "flagforge", redirect URI /auth/callback). opts.cpEnv
// adds control-plane settings.
export async function startPlatform(opts = {}) {
  for (const b of ["flagforge-controlplane", "flagforge-evaluator"]) {
    if (!fs.existsSync(path.join(bin, b))) throw new Error(`bin/${b} is missing: run make build`);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "flagforge-web-"));
  const [cpHttp, cpGrpc, evHttp, evGrpc, evAdmin] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const token = `ffat_${randomBytes(20).toString("hex")}`;
  const url = `http://127.0.0.1:${cpHttp}`;
  const procs = [];
  const oidcEnv = {};
  let idpUrl;
  if (opts.oidc) {
    const idpPort = await freePort();
    idpUrl = `http://127.0.0.1:${idpPort}`;
    const idp = startProcess("testidp", path.join(bin, "flagforge-testidp"), [
      "--addr", `127.0.0.1:${idpPort}`, "--client", "flagforge", "--redirect-uri", `${url}/auth/callback`, "--token-ttl", opts.oidc.tokenTTL ?? "1h",
    ], {}, dir);
    procs.push(idp);
    await waitReady(`${idpUrl}/.well-known/openid-configuration`, idp, "test identity provider");
    Object.assign(oidcEnv, { FLAGFORGE_OIDC_ISSUER: idpUrl, FLAGFORGE_OIDC_AUDIENCE: "flagforge" });
  }
  const cp = startProcess("controlplane", path.join(bin, "flagforge-controlplane"), ["serve"], {
    ...oidcEnv,
    FLAGFORGE_DATABASE_URL: `sqlite://${dir}/flagforge.db`,
    FLAGFORGE_DATA_DIR: dir,
    FLAGFORGE_GRPC_ADDR: `127.0.0.1:${cpGrpc}`,
    FLAGFORGE_HTTP_ADDR: `127.0.0.1:${cpHttp}`,
    FLAGFORGE_BOOTSTRAP_ORG: "acme",
    FLAGFORGE_BOOTSTRAP_EMAIL: "admin@acme.test",
    FLAGFORGE_BOOTSTRAP_TOKEN: token,
    ...(opts.cpEnv || {}),
  }, dir);
  procs.push(cp);
  const stop = async () => {
    for (const pr of procs.reverse()) {
      pr.p.kill("SIGTERM");
      const t = setTimeout(() => pr.p.kill("SIGKILL"), 10000);
      await pr.exited;
      clearTimeout(t);
    }
    if (!process.env.FLAGFORGE_KEEP_TEST_DATA) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitReady(`${url}/readyz`, cp, "control plane");
    const admin = async (method, p, body, as = token) => {
      let r;
      // Rate-limited (429): wait as told and retry (bulk set-up in benchmarks).
      for (let i = 0; ; i++) {
        r = await fetch(url + p, {
          method,
          headers: { Authorization: `Bearer ${as}`, "Content-Type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        if (r.status !== 429 || i > 50) break;
        await r.text();
        await sleep(1000 * Number(r.headers.get("retry-after") ?? 1));
      }
      const text = await r.text();
      const data = text ? JSON.parse(text) : {};
      if (!r.ok) throw new Error(`${method} ${p}: ${r.status} ${text}`);
      return data;
    };
    await admin("POST", "/v1/orgs/acme/projects", { project: { key: "web", name: "Web shop" } });
    const sdkKeys = {};
    for (const env of ["staging", "production"]) {
      const r = await admin("POST", `/v1/orgs/acme/projects/web/environments/${env}/sdk-keys`, { name: `e2e ${env}`, kind: "SDK_KEY_KIND_SERVER" });
      sdkKeys[env] = r.secret;
    }
    const ev = startProcess("evaluator", path.join(bin, "flagforge-evaluator"), [], {
      FLAGFORGE_SYNC_ADDR: `127.0.0.1:${cpGrpc}`,
      FLAGFORGE_SYNC_TOKEN: fs.readFileSync(path.join(dir, "sync-token"), "utf8").trim(),
      FLAGFORGE_TRUSTED_KEYS: path.join(dir, "signing-key.pub.pem"),
      FLAGFORGE_ENVIRONMENTS: "*",
      FLAGFORGE_DATA_DIR: path.join(dir, "evaluator"),
      FLAGFORGE_GRPC_ADDR: `127.0.0.1:${evGrpc}`,
      FLAGFORGE_HTTP_ADDR: `127.0.0.1:${evHttp}`,
      FLAGFORGE_ADMIN_ADDR: `127.0.0.1:${evAdmin}`,
      // Usage counts reach the control plane within a second (the flag page shows them).
      FLAGFORGE_USAGE_INTERVAL: "1s",
    }, dir);
    procs.push(ev);
    const evalUrl = `http://127.0.0.1:${evHttp}`;
    await waitReady(`${evalUrl}/readyz`, ev, "evaluator");
    // evaluate asks the evaluator (the data plane) for a decision.
    const evaluate = async (env, flagKey, context) => {
      const r = await fetch(`${evalUrl}/v1/evaluate`, {
        method: "POST",
        headers: { Authorization: `Bearer ${sdkKeys[env]}`, "Content-Type": "application/json" },
        body: JSON.stringify({ flagKey, context }),
      });
      const data = await r.json();
      if (!r.ok) throw new Error(`evaluate: ${r.status} ${JSON.stringify(data)}`);
      return data;
    };
    return { url, evalUrl, idpUrl, token, admin, evaluate, sdkKeys, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

// chromiumPath is the Debian Chromium (scripts/ensure-browser.sh), or null.
export function chromiumPath() {
  for (const b of [process.env.FLAGFORGE_CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (b && fs.existsSync(b)) return b;
  }
  return null;
}

// launch starts headless Chromium; without one it skips the test (t.skip), except
// under CI=true where a missing browser fails.
export async function launch(t) {
  const exe = chromiumPath();
  if (!exe) {
    if (process.env.CI === "true") throw new Error("Chromium is missing: run scripts/ensure-browser.sh");
    t.skip("Chromium is missing: run scripts/ensure-browser.sh");
    return null;
  }
  return chromium.launch({
    executablePath: exe,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

// signIn opens the console and signs in with token.
export async function signIn(page, url, token) {
  await page.goto(url + "/");
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

// checkA11y fails on any serious or critical axe-core violation of the page.
export async function checkA11y(page, what) {
  const res = await new AxeBuilder({ page }).analyze();
  const bad = res.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  if (bad.length) {
    const detail = bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join("\n  ")}`).join("\n");
    throw new Error(`${what}: ${bad.length} serious/critical accessibility violations\n${detail}`);
  }
}

// screenshot writes web/artifacts/<name>.png (gitignored; two are copied to docs/img).
export async function screenshot(page, name) {
  fs.mkdirSync(artifacts, { recursive: true });
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}
