// Release safety in the console: the reviewer of a change request sees what the
// change does to the contexts the evaluator has actually seen, not just JSON.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

describe("impact preview", () => {
  let platform, browser, page;

  before(async (t) => {
    platform = await startPlatform();
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(15000);
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it("the reviewer sees how many users a rule moves from off to on, with examples, and private attributes never reach the control plane", async (t) => {
    if (!browser) return t.skip("no browser");
    const base = "/v1/orgs/acme/projects/web";
    await platform.admin("PUT", `${base}/context-policy`, { privateAttributes: ["email"] });
    await platform.admin("POST", `${base}/flags`, { flag: { key: "checkout", name: "Checkout", type: "FLAG_TYPE_BOOLEAN" } });
    await platform.admin("PUT", `${base}/environments/production/flags/checkout`, {
      config: { on: true, offVariant: "off", defaultServe: { variant: "off" } }, revision: 1,
    });
    // 30 users use the shop: every third one in the US.
    const user = (i) => ({ targetingKey: `user-${i}`, country: i % 3 === 0 ? "US" : "NL", email: `user-${i}@example.com` });
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", user(0))).variant, "off"));
    for (let i = 1; i < 30; i++) await platform.evaluate("production", "checkout", user(i));
    const seen = await eventually(async () => {
      const r = await platform.admin("GET", `${base}/environments/production/seen-contexts?pageSize=100`);
      assert.equal(Number(r.total), 30);
      return r;
    });
    assert.doesNotMatch(JSON.stringify(seen), /example\.com/, "a private attribute reached the control plane");

    // Production requires approval: turning checkout on for the US opens a change request.
    const env = await platform.admin("GET", `${base}/environments/production`);
    await platform.admin("PATCH", `${base}/environments/production`, {
      settings: { approvalsRequired: true, requiredApprovals: 1, emergencyOffAllowed: true }, revision: env.environment.revision,
    });
    const proposed = await platform.admin("PUT", `${base}/environments/production/flags/checkout`, {
      config: {
        on: true, offVariant: "off", defaultServe: { variant: "off" },
        rules: [{ id: "us-launch", clauses: [{ attribute: "country", operator: "OPERATOR_IN", values: ["US"] }], serve: { variant: "on" } }],
      },
      revision: 2,
    });
    const id = proposed.changeRequest.id;
    assert.ok(id, `a change request was opened: ${JSON.stringify(proposed)}`);

    await signIn(page, platform.url, platform.token);
    await page.goto(`${platform.url}/o/acme/p/web/changes/production/${id}`);
    const preview = page.getByRole("region", { name: "Impact preview" });
    await preview.getByText("10 decisions change over 30 contexts seen in production").waitFor();
    const matrix = preview.getByRole("table", { name: /Decisions of checkout/ });
    await matrix.getByRole("row", { name: "off on 10", exact: true }).waitFor();
    await matrix.getByRole("row", { name: "off off (unchanged) 20", exact: true }).waitFor();
    const examples = preview.getByRole("list", { name: "Examples of changed decisions of checkout" });
    await examples.getByText(/"country":"US".*off → on \(TARGETING_MATCH, rule us-launch\)/).first().waitFor();
    assert.doesNotMatch(await preview.innerText(), /example\.com/);
    await checkA11y(page, "change request impact preview");
    await screenshot(page, "change-request-impact");

    // The seen contexts themselves, as the control plane holds them.
    await page.getByRole("link", { name: "Seen contexts" }).click();
    const table = page.getByRole("table", { name: /30 contexts seen in production/ });
    await table.waitFor();
    await table.getByText('"targetingKey":"user-29"').waitFor();
    await page.getByText("Private attributes (removed before a context leaves the evaluator or SDK): email.").waitFor();
    assert.doesNotMatch(await table.innerText(), /example\.com/);
    await checkA11y(page, "seen contexts");
  });

  it("a preview of a flag the environment does not have is refused naming the field", async () => {
    let err;
    try {
      await platform.admin("POST", "/v1/orgs/acme/projects/web/environments/production/impact:preview", {
        changes: [{ flagConfig: { flag: "no-such-flag", config: { on: true } } }],
      });
    } catch (e) {
      err = e;
    }
    assert.match(String(err), /400.*changes\[0\]\.flagConfig\.flag/);
  });
});
