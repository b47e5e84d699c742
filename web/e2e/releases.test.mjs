// The release plan page: a flag rolled out step by step, paused, rolled back, a
// guardrail that cannot be evaluated pausing the plan, and a guardrail on
// SDK-reported errors (a field error shown at its field, then evaluated while the
// plan runs), driven in Chromium against a real control plane and evaluator.
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

// closedPort is a loopback port nobody listens on: the "Prometheus" of these
// tests is down.
async function closedPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

describe("release plans in the console", () => {
  let platform, browser, page;
  const planPage = () => `${platform.url}/o/acme/p/web/releases/checkout/staging`;

  before(async (t) => {
    platform = await startPlatform({
      cpEnv: {
        FLAGFORGE_PROMETHEUS_URL: `http://127.0.0.1:${await closedPort()}`,
        FLAGFORGE_RELEASE_POLL_INTERVAL: "200ms",
        FLAGFORGE_RELEASE_CHECK_INTERVAL: "1s",
      },
    });
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(15000);
    await platform.admin("POST", "/v1/orgs/acme/projects/web/flags", { flag: { key: "checkout", name: "New checkout", type: "FLAG_TYPE_BOOLEAN" } });
    await signIn(page, platform.url, platform.token);
    await page.getByRole("heading", { name: "Flags" }).waitFor();
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it("the release manager rolls checkout out to half of staging, pauses, rolls back, and the evaluator follows each step", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    await page.getByRole("link", { name: "Release plan" }).click();
    await page.getByRole("heading", { name: /Release plan: checkout in staging/ }).waitFor();
    await page.getByLabel("Steps (share/hold, comma separated)").fill("50%/1h, 100%");
    await page.getByLabel("Description").fill("new checkout");
    await checkA11y(page, "new release plan");
    await page.getByRole("button", { name: "Create plan" }).click();
    await page.getByRole("status").filter({ hasText: "Ready: step 0 of 2 applied" }).waitFor();
    assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "user-1" })).reason, "DISABLED");

    await page.getByLabel("Comment").fill("go");
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("status").filter({ hasText: "Running: step 1 of 2 applied" }).waitFor();
    await page.getByRole("row", { name: /Step 1 50% on \/ 50% off 1h serving now/ }).waitFor();
    await page.getByText(/Next step due/).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "user-1" })).reason, "SPLIT"));
    await checkA11y(page, "running release plan");
    await screenshot(page, "release-plan");

    await page.getByRole("button", { name: "Pause" }).click();
    await page.getByRole("status").filter({ hasText: "Paused: step 1 of 2 applied — go" }).waitFor();
    await page.getByRole("button", { name: "Roll back" }).click();
    // Rolled back before its first step: the flag is off again, and the page offers a new plan.
    await page.getByRole("button", { name: "Create plan" }).waitFor();
    await page.getByRole("row", { name: /1 of 2 applied Rolled back/ }).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "user-1" })).reason, "DISABLED"));
  });

  it("a guardrail that cannot be evaluated pauses the plan before its first step, and the page says why", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(planPage());
    await page.getByLabel("Steps (share/hold, comma separated)").fill("10%/1h, 100%");
    await page.getByLabel("Guardrail name").fill("checkout-errors");
    await page.getByLabel("PromQL ($window is the window)").fill('sum(increase(checkout_errors_total{variant="on"}[$window]))');
    await page.getByLabel("Breach above").fill("5");
    await page.getByLabel("Window", { exact: true }).fill("10m");
    await page.getByRole("button", { name: "Create plan" }).click();
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("status").filter({ hasText: /Paused: step 0 of 2 applied — guardrail "checkout-errors" could not be evaluated/ }).waitFor();
    const row = page.getByRole("table", { name: "Guardrails" }).getByRole("row", { name: /checkout-errors/ });
    await row.getByText(/could not be evaluated: prometheus unreachable/).waitFor();
    await row.getByText(/> 5 over 10m/).waitFor();
    assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "user-1" })).reason, "DISABLED");
    await checkA11y(page, "paused release plan");
    await screenshot(page, "release-plan-paused");
  });

  it("a guardrail on SDK-reported errors is built in the form, a server error shows at its field, and the running plan evaluates it", async (t) => {
    if (!browser) return t.skip("no browser");
    await platform.admin("POST", "/v1/orgs/acme/projects/web/flags", { flag: { key: "payments", name: "New payments", type: "FLAG_TYPE_BOOLEAN" } });
    await page.goto(`${platform.url}/o/acme/p/web/releases/payments/staging`);
    await page.getByRole("heading", { name: /Release plan: payments in staging/ }).waitFor();
    await page.getByLabel("Steps (share/hold, comma separated)").fill("10%/1h, 100%");
    await page.getByLabel("Guardrail name").fill("payments-sdk-errors");
    await page.getByLabel("Guardrail kind").selectOption("sdkErrors");
    assert.equal(await page.getByLabel("PromQL ($window is the window)").count(), 0);
    // The variants offered are the flag's, plus every variant; the rolled-out one is preselected.
    const variant = page.getByLabel("Variant measured");
    await variant.locator("option", { hasText: "off" }).waitFor({ state: "attached" });
    assert.deepEqual(await variant.locator("option").allTextContents(), ["on", "off", "every variant"]);
    assert.equal(await variant.inputValue(), "on");
    assert.equal(await page.getByLabel(/^Measure/).inputValue(), "SDK_ERRORS_MEASURE_RATIO");
    await page.getByLabel("Minimum evaluations").fill("20");
    await page.getByLabel("Window", { exact: true }).fill("1m");

    // A negative threshold is refused by the server, which names the field: the
    // error shows in the guardrail fieldset and marks "Breach above" invalid.
    await page.getByLabel("Breach above").fill("-1");
    await page.getByRole("button", { name: "Create plan" }).click();
    const fieldError = page.getByRole("group", { name: "Guardrail (optional)" }).getByRole("alert");
    await fieldError.filter({ hasText: /must be >= 0.*\(field: guardrails\[0\]\.threshold\)/ }).waitFor();
    assert.equal(await page.getByLabel("Breach above").getAttribute("aria-invalid"), "true");
    assert.equal(await page.getByLabel("Breach above").getAttribute("aria-describedby"), await fieldError.getAttribute("id"));
    assert.equal(await page.getByLabel("Minimum evaluations").getAttribute("aria-invalid"), null);
    await checkA11y(page, "release plan guardrail error");

    await page.getByLabel("Breach above").fill("0.1");
    await page.getByRole("button", { name: "Create plan" }).click();
    await page.getByRole("status").filter({ hasText: "Ready: step 0 of 2 applied" }).waitFor();
    const row = page.getByRole("table", { name: "Guardrails" }).getByRole("row", { name: /payments-sdk-errors/ });
    await row.getByText('SDK-reported error ratio of variant "on" > 0.1 over 1m (min 20 evaluations)', { exact: true }).waitFor();
    const stored = (await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/staging/release-plans?flag=payments")).releasePlans[0].guardrails[0];
    assert.deepEqual(stored.sdkErrors, { variant: "on", measure: "SDK_ERRORS_MEASURE_RATIO", minEvaluations: "20" });
    assert.equal(stored.threshold, 0.1);
    assert.equal(stored.window, "60s");

    // No Prometheus is needed: with no errors reported the running plan's guardrail holds.
    await page.getByRole("button", { name: "Start" }).click();
    await page.getByRole("status").filter({ hasText: "Running: step 1 of 2 applied" }).waitFor();
    await row.getByText("holding").waitFor();
    await checkA11y(page, "running release plan with an SDK-error guardrail");
    await screenshot(page, "release-plan-sdk-errors");
  });
});
