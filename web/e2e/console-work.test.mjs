// The console's everyday work at scale, driven in Chromium against a real control
// plane and evaluator: a flags list of many flags (server-side filters in the URL,
// virtualized rows, sparklines, bulk actions governed like single writes), the rule
// editor (reorder by keyboard and drag, disable a rule, validation while typing)
// and the review inbox (needs my review / mine, comments on diff lines).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

const FLAGS = 40;
const cfgURL = (env, flag) => `/v1/orgs/acme/projects/web/environments/${env}/flags/${flag}`;

describe("the console at work", () => {
  let platform, browser, page, aliceToken, bobToken;

  before(async (t) => {
    platform = await startPlatform();
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    for (let i = 0; i < FLAGS; i++) {
      await platform.admin("POST", "/v1/orgs/acme/projects/web/flags", {
        flag: { key: `flag-${String(i).padStart(2, "0")}`, type: "FLAG_TYPE_BOOLEAN", tags: [`team-${i % 5}`], owner: i % 2 ? "ann@acme.test" : "bob@acme.test" },
      });
    }
    // Two team-1 flags are on in staging and production.
    for (const f of ["flag-01", "flag-06"]) {
      for (const env of ["staging", "production"]) {
        await platform.admin("PUT", cfgURL(env, f), { config: { on: true, offVariant: "off", defaultServe: { variant: "on" } }, revision: 1 });
      }
    }
    const alice = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email: "alice@acme.test" }, role: "ROLE_EDITOR" });
    aliceToken = (await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: "alice", memberId: alice.member.id })).secret;
    const bob = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email: "bob@acme.test" }, role: "ROLE_EDITOR" });
    bobToken = (await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: "bob", memberId: bob.member.id })).secret;
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it("finds flags among many with server-side filters kept in the URL; only the rows in view are rendered", async (t) => {
    if (!browser) return t.skip("no browser");
    // flag-01 is evaluated in staging: its sparkline counts it.
    // (once the evaluator serves the set-up: it follows the control plane within seconds)
    await eventually(async () => assert.equal((await platform.evaluate("staging", "flag-01", { targetingKey: "u0" })).variant, "on"));
    for (let i = 1; i < 5; i++) assert.equal((await platform.evaluate("staging", "flag-01", { targetingKey: `u${i}` })).variant, "on");
    await signIn(page, platform.url, platform.token);
    await page.getByRole("status").filter({ hasText: `${FLAGS} flags` }).waitFor();
    const rendered = await page.locator("tbody tr[aria-rowindex]").count();
    assert.ok(rendered > 5 && rendered < FLAGS, `${rendered} rows in the DOM for ${FLAGS} flags (virtualized)`);
    // Scrolling the table brings the last flag in.
    await page.getByRole("region", { name: "Flags table (scrolls)" }).evaluate((el) => el.scrollTo({ top: el.scrollHeight }));
    await page.getByRole("row", { name: /flag-39/ }).waitFor();

    await page.getByLabel("Search flags").fill("tag:team-1");
    await page.getByRole("status").filter({ hasText: "8 flags match" }).waitFor();
    await page.getByLabel("In environment").selectOption("staging");
    await page.getByLabel("On or off there").selectOption("on");
    await page.getByRole("status").filter({ hasText: "2 flags match" }).waitFor();
    assert.match(page.url(), /q=tag%3Ateam-1/);
    assert.match(page.url(), /env=staging/);
    assert.match(page.url(), /on=on/);
    // The permalink opens the same list.
    await page.reload();
    await page.getByRole("status").filter({ hasText: "2 flags match" }).waitFor();
    await eventually(async () => {
      await page.reload();
      const spark = page.getByRole("img", { name: /^flag-01: \d+ evaluations in staging over 7 days/ });
      const label = await spark.getAttribute("aria-label", { timeout: 3000 });
      assert.ok(Number(/: (\d+) evaluations/.exec(label)?.[1]) >= 5, label);
    }, 20000);
    await page.getByLabel("Sort by").selectOption("updated");
    await page.getByLabel("Descending").check();
    assert.match(page.url(), /sort=updated/);
    await checkA11y(page, "flags list (filtered)");
    await screenshot(page, "flags-list-filtered");
    // An unknown status is said, not silently empty.
    await page.getByLabel("Search flags").fill("status:ancient");
    await page.getByRole("alert").filter({ hasText: "Unknown status" }).waitFor();
    await page.getByLabel("Search flags").fill("");
  });

  it("bulk actions are governed like single writes: a tag for all, change requests in protected production, refusals with the reason", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags?q=tag%3Ateam-1`);
    await page.getByRole("status").filter({ hasText: "8 flags match" }).waitFor();
    await page.getByLabel("Select all 8 flags shown").check();
    const bar = page.getByRole("region", { name: "Bulk actions" });
    await bar.getByText("8 selected").waitFor();
    await checkA11y(page, "flags list (bulk selection)");
    // Each bulk action is ONE request to the bulk write API (one transaction).
    const writes = [];
    const onRequest = (r) => r.method() !== "GET" && r.url().includes("/v1/") && writes.push(`${r.method()} ${new URL(r.url()).pathname}`);
    page.on("request", onRequest);
    await bar.getByLabel("Tag to add").fill("bulk");
    await bar.getByRole("button", { name: "Add tag" }).click();
    await page.getByRole("status").filter({ hasText: "Tag 8 flags bulk: 8 done" }).waitFor();
    await page.getByRole("status").filter({ hasText: "One bulk write (one transaction)." }).waitFor();
    assert.deepEqual(writes.filter((w) => !w.endsWith(":validate")), ["POST /v1/orgs/acme/projects/web:bulkWrite"]);
    writes.length = 0;
    const tagged = await platform.admin("GET", "/v1/orgs/acme/projects/web/flags?tags=bulk");
    assert.equal(tagged.flags.length, 8);

    // Production now requires approval: turning off there proposes, staging turns off.
    const env = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/production");
    await platform.admin("PATCH", "/v1/orgs/acme/projects/web/environments/production", {
      settings: { approvalsRequired: true, requiredApprovals: 1, emergencyOffAllowed: true }, revision: env.environment.revision,
    });
    await page.getByRole("button", { name: "Dismiss" }).click();
    await page.getByLabel("Select all 8 flags shown").check();
    await bar.getByLabel("Turn off in").selectOption("production");
    await bar.getByLabel("Reason (audit, change requests)").fill("cleanup");
    await bar.getByRole("button", { name: "Turn off" }).click();
    const outcome = page.getByRole("status").filter({ hasText: "Turn 8 flags off in production" });
    await outcome.filter({ hasText: "2 change requests created" }).waitFor();
    assert.equal((await platform.evaluate("production", "flag-01", { targetingKey: "u" })).variant, "on");
    await outcome.getByRole("link", { name: "review" }).first().waitFor();
    await page.getByRole("button", { name: "Dismiss" }).click();
    writes.length = 0;

    await page.getByLabel("Select all 8 flags shown").check();
    await bar.getByLabel("Turn off in").selectOption("staging");
    await bar.getByRole("button", { name: "Turn off" }).click();
    await page.getByRole("status").filter({ hasText: "Turn 8 flags off in staging: 8 done" }).waitFor();
    assert.deepEqual(writes, ["POST /v1/orgs/acme/projects/web:bulkWrite"]);
    page.off("request", onRequest);
    await eventually(async () => assert.equal((await platform.evaluate("staging", "flag-06", { targetingKey: "u" })).reason, "DISABLED"));
    await page.getByRole("button", { name: "Dismiss" }).click();

    // Archiving flags a protected environment serves is refused, each with the reason.
    await page.getByLabel("Select flag-01").check();
    await page.getByLabel("Select flag-11").check();
    await bar.getByRole("button", { name: "Archive…" }).click();
    await bar.getByRole("button", { name: "Confirm: archive 2 flags" }).click();
    const refused = page.getByRole("status").filter({ hasText: "Archive 2 flags: 0 done, 2 refused" });
    await refused.waitFor();
    assert.match(await refused.textContent(), /flag-01: refused — .*production/);
    await checkA11y(page, "flags list (bulk outcome)");
    await screenshot(page, "flags-list-bulk");
  });

  it("the rule editor reorders by keyboard and drag, disables a rule, and validates while typing", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/flag-02/staging`);
    await page.getByRole("switch", { name: "Serve targeting in staging" }).check();
    const rule = async (n, attr, value, serve) => {
      await page.getByRole("button", { name: "Add rule" }).click();
      await page.getByLabel(`Rule ${n} condition 1 attribute`).fill(attr);
      await page.getByLabel(`Rule ${n} condition 1 values`).fill(value);
      await page.getByLabel(`Rule ${n} serves`).selectOption(serve);
    };
    await rule(1, "country", "NL", "on");
    await rule(2, "plan", "pro", "off");
    await rule(3, "beta", "yes", "on");
    await page.getByLabel("Otherwise serve").selectOption("off");
    // Alt+↓ on rule 1 moves it below rule 2, and keeps the keyboard on it.
    await page.getByRole("button", { name: /^Reorder rule 1/ }).press("Alt+ArrowDown");
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "If plan is one of pro → serve off");
    assert.equal(await page.getByTestId("rule-2-summary").textContent(), "If country is one of NL → serve on");
    assert.match(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? ""), /^Reorder rule 2/);
    // Dragging rule 3 onto rule 1 puts it first.
    await page.getByRole("button", { name: /^Reorder rule 3/ }).dragTo(page.getByTestId("rule-1"));
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "If beta is one of yes → serve on");
    // Disable the beta rule: kept, skipped.
    await page.getByRole("switch", { name: "Enabled (rule 1)" }).uncheck();
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "Disabled (skipped): If beta is one of yes → serve on");
    // A broken regex is marked while typing, before any save.
    await page.getByLabel("Rule 3 condition 1 operator").selectOption({ label: "matches regex" });
    await page.getByLabel("Rule 3 condition 1 values").fill("(NL");
    await eventually(async () => assert.equal(await page.getByLabel("Rule 3 condition 1 values").getAttribute("aria-invalid"), "true"), 5000);
    await page.getByRole("list", { name: "Problems found while typing" }).getByText("config.rules[2].clauses[0]").waitFor();
    await checkA11y(page, "flag page (problems while typing)");
    await screenshot(page, "rule-editor");
    await page.getByLabel("Rule 3 condition 1 values").fill("^(NL|BE)$");
    await eventually(async () => assert.equal(await page.getByLabel("Rule 3 condition 1 values").getAttribute("aria-invalid"), null), 5000);
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    // The evaluator skips the disabled rule; explain says it is disabled.
    await eventually(async () => {
      const d = await platform.evaluate("staging", "flag-02", { targetingKey: "u", beta: "yes", country: "BE" });
      assert.equal(d.variant, "on");
      assert.equal(d.reason, "TARGETING_MATCH");
    });
    const saved = await platform.admin("GET", cfgURL("staging", "flag-02"));
    assert.deepEqual(saved.config.config.rules.map((r) => [r.clauses[0].attribute, !!r.disabled]), [["beta", true], ["plan", false], ["country", false]]);
    assert.equal((await platform.evaluate("staging", "flag-02", { targetingKey: "u", beta: "yes" })).variant, "off");
    const ex = await platform.admin("POST", `${cfgURL("staging", "flag-02")}:explain`, { context: { targetingKey: "u", beta: "yes" } });
    assert.equal(ex.explanation.rules[0].disabled, true);
    await page.goto(`${platform.url}/o/acme/p/web/playground?flag=flag-02&env=staging`);
    await page.getByLabel(/Context/).fill(JSON.stringify({ targetingKey: "u", beta: "yes" }));
    await page.getByRole("button", { name: "Evaluate" }).click();
    await page.getByText(/Rule 1 \(.*\): disabled \(skipped\)/).waitFor();
  });

  it("the inbox splits what needs my review from mine; a reviewer comments on a diff line", async (t) => {
    if (!browser) return t.skip("no browser");
    // Alice proposes turning flag-03 on in production (approvals required).
    const put = await platform.admin("PUT", cfgURL("production", "flag-03"), {
      config: { on: true, offVariant: "off", defaultServe: { variant: "on" } }, revision: 1, comment: "launch flag-03",
    }, aliceToken);
    const id = put.changeRequest.id;
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, platform.url, bobToken);
    await page.getByRole("link", { name: "Change requests" }).click();
    await page.getByRole("button", { name: "Needs my review", pressed: true }).waitFor();
    await page.getByRole("link", { name: /flag flag-03: launch flag-03/ }).waitFor();
    await page.getByRole("button", { name: "Mine" }).click();
    await page.getByText("You have no change request in production").waitFor();
    assert.match(page.url(), /tab=mine/);
    await checkA11y(page, "change requests (mine)");
    await page.getByRole("button", { name: "Needs my review" }).click();
    await page.getByRole("link", { name: /flag flag-03: launch flag-03/ }).click();
    await page.getByRole("button", { name: "JSON" }).click();
    await page.getByRole("button", { name: "Comment on /on" }).click();
    await page.getByRole("textbox", { name: "Comment on /on" }).fill("is the kill switch tested?");
    await page.getByRole("button", { name: "Comment", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Comment added on /on" }).waitFor();
    const diff = page.getByRole("table", { name: "Proposed changes as a JSON diff" });
    await diff.getByRole("row", { name: /\/on/ }).getByText("is the kill switch tested?").waitFor();
    await checkA11y(page, "change request (line comment)");
    await screenshot(page, "change-request-line-comment");
    const cr = await platform.admin("GET", `/v1/orgs/acme/projects/web/environments/production/change-requests/${id}`);
    assert.equal(cr.changeRequest.comments[0].path, "/on");

    // Alice: nothing needs her review; her request is under Mine with bob's comment.
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, platform.url, aliceToken);
    await page.getByRole("link", { name: "Change requests" }).click();
    await page.getByText("Nothing needs your review in production").waitFor();
    await page.getByRole("button", { name: "Mine" }).click();
    await page.getByRole("link", { name: /flag flag-03: launch flag-03/ }).click();
    await page.getByText(/on \/on: “is the kill switch tested\?”/).waitFor();
  });

  it("the flags list and the inbox are usable on a narrow screen", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${platform.url}/o/acme/p/web/flags?q=tag%3Ateam-2`);
    await page.getByRole("status").filter({ hasText: "8 flags match" }).waitFor();
    await page.getByLabel("Select flag-02").check();
    await page.getByRole("region", { name: "Bulk actions" }).waitFor();
    await checkA11y(page, "flags list with bulk actions (narrow)");
    await screenshot(page, "flags-list-bulk-narrow");
    await page.goto(`${platform.url}/o/acme/p/web/changes?env=production&tab=mine`);
    await page.getByRole("link", { name: /flag flag-03/ }).waitFor();
    await checkA11y(page, "change requests (narrow)");
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});
