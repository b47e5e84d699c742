// Time to interactive of the flags list with 1,000 flags, in headless Chromium
// against a real control plane (make bench-web). Prints the median of RUNS cold
// loads: from navigation start until the list says it holds all 1,000 flags with
// their first rows rendered (rows are virtualized: only those in view are in the
// DOM), and until a search typed right after narrows the list to one row (the
// server filters). Beside the wall-clock figures (which a loaded machine
// stretches) it prints the page's main-thread CPU time (Chromium's TaskDuration
// and ScriptDuration, read over CDP), which contention distorts less, and the
// load average at the start and end.
import os from "node:os";
import { launch, startPlatform } from "../harness.mjs";

const FLAGS = 1000;
const RUNS = Number(process.env.RUNS ?? 5);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const platform = await startPlatform();
let browser;
try {
  const load = () => os.loadavg().map((x) => x.toFixed(2)).join(", ");
  console.log(`load average at start: ${load()}`);
  const t0 = Date.now();
  // One bulk write creates them all (one transaction).
  await platform.admin("POST", "/v1/orgs/acme/projects/web:bulkWrite", {
    flags: Array.from({ length: FLAGS }, (_, i) => ({ key: `flag-${String(i).padStart(4, "0")}`, type: "FLAG_TYPE_BOOLEAN", tags: [`team-${i % 7}`] })),
    comment: "bench",
  });
  console.log(`created ${FLAGS} flags in ${Date.now() - t0} ms (one bulk write)`);
  browser = await launch({ skip: (m) => { throw new Error(m); } });
  const rendered = [];
  const searched = [];
  const task = [];
  const script = [];
  for (let r = 0; r < RUNS; r++) {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    await ctx.addInitScript((token) => sessionStorage.setItem("flagforge.token", token), platform.token);
    const page = await ctx.newPage();
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("Performance.enable");
    await page.goto(`${platform.url}/o/acme/p/web/flags`);
    // Poll in the page (cheap DOM reads): the status line counts the flags, the
    // rendered rows carry their pills (no "…" while states load).
    const rows = (n, text) => page.waitForFunction(([n, text]) => {
      const r = document.querySelectorAll("tbody tr[aria-rowindex]");
      const status = document.querySelector('[data-testid="flags-count"]')?.textContent ?? "";
      return r.length === n && status.startsWith(text) && !document.querySelector("tbody")?.textContent.includes("…") ? performance.now() : 0;
    }, [n, text], { polling: "raf", timeout: 60000 }).then((h) => h.jsonValue());
    const inDom = await page.waitForFunction(() => document.querySelectorAll("tbody tr[aria-rowindex]").length, null, { timeout: 60000 }).then((h) => h.jsonValue());
    const all = await rows(inDom, `${FLAGS} flags`);
    await page.getByLabel("Search flags").fill("flag-0500");
    const done = await rows(1, "1 flag match");
    rendered.push(all);
    searched.push(done);
    const m = Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((x) => [x.name, x.value]));
    task.push(m.TaskDuration * 1000);
    script.push(m.ScriptDuration * 1000);
    await ctx.close();
  }
  console.log(`flags list, ${FLAGS} flags, 3 environments, median of ${RUNS} cold loads:`);
  console.log(`  list ready (1,000 flags, rows in view rendered): ${median(rendered).toFixed(0)} ms after navigation start`);
  console.log(`  search answered (TTI):    ${median(searched).toFixed(0)} ms after navigation start`);
  console.log(`  page main-thread CPU until then: ${median(task).toFixed(0)} ms (of which script ${median(script).toFixed(0)} ms)`);
  console.log(`load average at end: ${load()}`);
} finally {
  await browser?.close();
  await platform.stop();
}
