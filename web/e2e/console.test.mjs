// The console's user stories, driven in Chromium against a real control plane and
// evaluator. Each story says what the user does and what the platform answers.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

describe("the web console", () => {
  let platform, browser, page, bobToken, aliceToken, staleCR;

  before(async (t) => {
    platform = await startPlatform();
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(10000);
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it("refuses a wrong token and says why", async (t) => {
    if (!browser) return t.skip("no browser");
    await signIn(page, platform.url, "ffat_not-a-real-token");
    await page.getByRole("alert").filter({ hasText: "The API token was refused" }).waitFor();
    await checkA11y(page, "sign-in");
    await screenshot(page, "sign-in");
  });

  it("signs in with a pasted token and lists the flags of the project in every environment", async (t) => {
    if (!browser) return t.skip("no browser");
    await platform.admin("POST", "/v1/orgs/acme/projects/web/flags", { flag: { key: "dark-mode", name: "Dark mode", type: "FLAG_TYPE_BOOLEAN", tags: ["ui"] } });
    await platform.admin("PUT", "/v1/orgs/acme/projects/web/environments/staging/flags/dark-mode", {
      config: { on: true, offVariant: "off", defaultServe: { variant: "on" } }, revision: 1,
    });
    await signIn(page, platform.url, platform.token);
    await page.getByRole("heading", { name: "Flags" }).waitFor();
    assert.match(page.url(), /\/o\/acme\/p\/web\/flags$/);
    const row = page.getByRole("row", { name: /dark-mode/ });
    await row.getByRole("link", { name: /^dark-mode in staging: on, (Inactive|New)$/ }).waitFor();
    await row.getByRole("link", { name: /^dark-mode in production: off, New$/ }).waitFor();
    // "/" jumps to the search; search is in the URL: tag:ui finds it, tag:none does not.
    await page.keyboard.press("/");
    assert.equal(await page.getByLabel("Search flags").evaluate((el) => el === document.activeElement), true);
    await page.getByLabel("Search flags").fill("tag:none");
    await page.getByText("No flag matches").waitFor();
    assert.match(page.url(), /q=tag%3Anone/);
    await page.getByLabel("Search flags").fill("tag:ui");
    await row.waitFor();
    await checkA11y(page, "flags list");
    await screenshot(page, "flags-list");
  });

  it("the product manager rolls a new flag out to 10% of US users and the evaluator's decision changes", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByLabel("Search flags").fill("");
    await page.getByRole("button", { name: "New flag" }).click();
    await page.getByLabel("Key").fill("checkout");
    await page.getByLabel("Name").fill("New checkout");
    await page.getByRole("button", { name: "Create flag" }).click();
    await page.getByRole("heading", { name: "checkout", exact: true }).waitFor();
    assert.match(page.url(), /\/flags\/checkout\/production$/);

    // Before: off everywhere.
    const us = (i) => ({ targetingKey: `user-${i}`, country: "US" });
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", us(1))).reason, "DISABLED"));

    await page.getByRole("switch", { name: "Serve targeting in production" }).check();
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByLabel("Rule 1 condition 1 attribute").fill("country");
    await page.getByLabel("Rule 1 condition 1 operator").selectOption({ label: "is one of" });
    await page.getByLabel("Rule 1 condition 1 values").fill("US");
    await page.getByLabel("Rule 1 serves").selectOption({ label: "a percentage rollout" });
    await page.getByLabel("Rule 1 serves: weight of on").fill("10");
    await page.getByLabel("Rule 1 serves: weight of off").fill("90");
    await page.getByLabel("Otherwise serve").selectOption("off");
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "If country is one of US → serve rollout on 10% / off 90%");
    await page.getByText("unsaved change").first().waitFor();
    await page.getByLabel("Comment").fill("10% of US users");
    await checkA11y(page, "flag page (editing)");
    await screenshot(page, "flag-page");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();

    // After: US users are split about 10/90 by the evaluator; others get the default.
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", us(1))).reason, "SPLIT"));
    let on = 0;
    for (let i = 0; i < 300; i++) {
      const d = await platform.evaluate("production", "checkout", us(i));
      assert.equal(d.reason, "SPLIT");
      if (d.variant === "on") on++;
    }
    assert.ok(on > 10 && on < 60, `${on} of 300 US users got on, expected about 30`);
    // The flag page counts the evaluations the evaluator reported.
    await eventually(async () => {
      await page.reload();
      const text = await page.getByTestId("usage-total").textContent();
      const n = Number(/last hour: ([\d,]+)/.exec(text)?.[1].replace(/,/g, "") ?? 0);
      assert.ok(n >= 300, text);
    }, 60000);
    const fr = await platform.evaluate("production", "checkout", { targetingKey: "user-1", country: "FR" });
    assert.equal(fr.variant, "off");
    assert.equal(fr.reason, "DEFAULT");

    // Widening to 50% is one edit.
    await page.getByLabel("Rule 1 serves: weight of on").fill("50");
    await page.getByLabel("Rule 1 serves: weight of off").fill("50");
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "If country is one of US → serve rollout on 50% / off 50%");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "revision 3" }).waitFor();
    await eventually(async () => {
      let n = 0;
      for (let i = 0; i < 200; i++) if ((await platform.evaluate("production", "checkout", us(i))).variant === "on") n++;
      assert.ok(n > 70 && n < 130, `${n} of 200 US users got on at 50%`);
    });
  });

  it("a server error lands on the field it names", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByLabel("Rule 2 condition 1 attribute").fill("version");
    await page.getByLabel("Rule 2 condition 1 operator").selectOption({ label: "matches regex" });
    await page.getByLabel("Rule 2 condition 1 values").fill("(unclosed");
    await page.getByRole("button", { name: "Save changes" }).click();
    const alert = page.getByRole("alert").filter({ hasText: "config.rules[1].clauses[0]" });
    await alert.waitFor();
    assert.equal(await page.getByLabel("Rule 2 condition 1 values").getAttribute("aria-invalid"), "true");
    await page.getByRole("button", { name: "Delete rule 2" }).click();
    await page.getByText("No unsaved changes").waitFor();
  });

  it("QA forces a variant for listed users in staging", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("navigation", { name: "Environments" }).getByRole("link", { name: /staging/i }).click();
    await page.getByRole("switch", { name: "Serve targeting in staging" }).waitFor();
    assert.match(page.url(), /\/flags\/checkout\/staging$/);
    await page.getByRole("switch", { name: "Serve targeting in staging" }).check();
    await page.getByLabel("Targets served on").fill("qa-1\nqa-2\nqa-1");
    await page.getByText("Targets served on: 2").waitFor();
    await page.getByLabel("Otherwise serve").selectOption("off");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    await eventually(async () => {
      const d = await platform.evaluate("staging", "checkout", { targetingKey: "qa-2" });
      assert.deepEqual([d.variant, d.reason], ["on", "TARGETING_MATCH"]);
    });
    const other = await platform.evaluate("staging", "checkout", { targetingKey: "someone" });
    assert.deepEqual([other.variant, other.reason], ["off", "DEFAULT"]);
  });

  it("the playground's explanation matches the evaluator's /v1/evaluate", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("link", { name: "Playground" }).click();
    await page.getByLabel("Flag").selectOption("checkout");
    await page.getByLabel("Environment").selectOption("production");
    for (const ctx of [{ targetingKey: "user-3", country: "US" }, { targetingKey: "user-4", country: "DE" }, { targetingKey: "user-8", country: "US" }]) {
      await page.getByLabel("Context (JSON)").fill(JSON.stringify(ctx));
      await page.getByRole("button", { name: "Evaluate" }).click();
      const want = await platform.evaluate("production", "checkout", ctx);
      await eventually(async () => {
        assert.equal(await page.getByTestId("decision-variant").textContent(), want.variant);
        assert.equal(await page.getByTestId("decision-reason").textContent(), want.reason);
      }, 5000);
      if (want.reason === "SPLIT") await page.getByText(/bucket \d+ of 100/).waitFor();
      else await page.getByText("The default serve decided.").waitFor();
    }
    assert.match(page.url(), /ctx=/);
    await checkA11y(page, "playground");
    await screenshot(page, "playground");
  });

  it("the SRE kills the flag everywhere with a reason and the evaluator answers off", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/production`);
    await page.getByRole("button", { name: "Kill everywhere" }).click();
    const dialog = page.getByRole("dialog", { name: "Kill checkout everywhere?" });
    await dialog.getByLabel("Reason (recorded in the audit log)").fill("checkout errors spiking");
    const confirm = dialog.getByRole("button", { name: "Turn off everywhere" });
    assert.equal(await confirm.isDisabled(), true, "confirm is enabled before the key is typed");
    await dialog.getByLabel("Type the flag key (checkout) to confirm").fill("checkout");
    await checkA11y(page, "kill dialog");
    await confirm.click();
    await page.getByRole("status").filter({ hasText: "checkout is off in 3 environments" }).waitFor();
    await eventually(async () => {
      for (const env of ["staging", "production"]) {
        const d = await platform.evaluate(env, "checkout", { targetingKey: "qa-1", country: "US" });
        assert.deepEqual([d.variant, d.reason], ["off", "DISABLED"], env);
      }
    });
  });

  it("the SRE filters the audit log and reads an entry's before/after diff", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.getByRole("heading", { name: "Audit log" }).waitFor();
    await page.getByLabel("Contains").fill("checkout errors spiking");
    const rows = page.getByRole("row").filter({ hasText: "checkout errors spiking" });
    // One entry per environment the kill turned off (staging and production).
    await eventually(async () => assert.equal(await rows.count(), 2));
    await page.getByLabel("Resource (exact, or prefix ending in /)").fill("projects/web/environments/production/flags/checkout");
    await eventually(async () => assert.equal(await rows.count(), 1));
    await rows.first().getByRole("button").click();
    const diff = page.getByRole("table", { name: /Changes of entry/ });
    await diff.waitFor();
    await diff.getByRole("row").filter({ hasText: "/on" }).filter({ hasText: "− true" }).waitFor();
    assert.match(page.url(), /resource=/);
    await page.getByRole("button", { name: "Verify chain now" }).click();
    await page.getByRole("status").filter({ hasText: /Chain verified: \d+ entries/ }).waitFor();
    await checkA11y(page, "audit log");
    await screenshot(page, "audit-log");
  });

  it("four eyes: the author cannot approve their own change, another editor approves and applies it", async (t) => {
    if (!browser) return t.skip("no browser");
    const env = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/production");
    await platform.admin("PATCH", "/v1/orgs/acme/projects/web/environments/production", {
      settings: { approvalsRequired: true, requiredApprovals: 1, emergencyOffAllowed: true },
      revision: env.environment.revision,
    });
    const bob = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email: "bob@acme.test" }, role: "ROLE_EDITOR" });
    bobToken = (await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: "bob", memberId: bob.member.id })).secret;
    const alice = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email: "alice@acme.test" }, role: "ROLE_EDITOR" });
    aliceToken = (await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: "alice", memberId: alice.member.id })).secret;
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, platform.url, aliceToken);
    await page.getByRole("heading", { name: "Flags" }).waitFor();

    // Alice (editor) proposes turning dark-mode on in production.
    await page.goto(`${platform.url}/o/acme/p/web/flags/dark-mode/production`);
    await page.getByRole("switch", { name: "Serve targeting in production" }).check();
    await page.getByLabel("Otherwise serve").selectOption("on");
    await page.getByLabel("Comment").fill("launch dark mode");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "requires approval" }).waitFor();
    assert.equal((await platform.evaluate("production", "dark-mode", { targetingKey: "u" })).variant, "off");
    await page.getByRole("link", { name: "Open the change request" }).click();
    await page.getByRole("list", { name: "Proposed configuration" }).getByText("Flag is on; when off serve off").waitFor();
    await page.getByRole("button", { name: "JSON" }).click();
    await page.getByRole("table", { name: "Proposed changes as a JSON diff" }).getByText("/on").waitFor();
    await checkA11y(page, "change request");
    await screenshot(page, "change-request");

    // The author may not approve their own request: Approve is disabled with the
    // reason; forced anyway, the server refuses it with its own.
    const approve = page.getByRole("button", { name: "Approve" });
    await eventually(async () => assert.equal(await approve.isDisabled(), true));
    assert.match(await page.getByTestId("denied-reason").first().innerText(), /You wrote this change request: another member must approve it/);
    // Forced (the permission lookup fails, so the page cannot tell and leaves it
    // enabled): the server refuses, and the page shows its reason.
    await page.route("**/me/permissions**", (r) => r.abort());
    await page.reload();
    await approve.click();
    const refusal = page.getByRole("alert").filter({ hasText: /own|author/i });
    await refusal.waitFor();
    await page.unroute("**/me/permissions**");
    assert.equal(await page.getByRole("button", { name: "Apply" }).isDisabled(), true);
    const crUrl = page.url();

    // Bob, another editor, finds it in the inbox, approves and applies it.
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API token").fill(bobToken);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("link", { name: "Change requests" }).click();
    await page.getByRole("link", { name: /flag dark-mode: launch dark mode/ }).waitFor();
    await checkA11y(page, "change requests inbox");
    await page.getByRole("link", { name: /flag dark-mode: launch dark mode/ }).click();
    assert.equal(page.url(), crUrl.replace("?view=json", ""));
    await page.getByLabel("Review comment").fill("looks right");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("status").filter({ hasText: "You approved" }).waitFor();
    await page.getByRole("button", { name: "Apply" }).click();
    await page.getByRole("status").filter({ hasText: "Applied" }).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("production", "dark-mode", { targetingKey: "u" })).variant, "on"));
  });

  it("an editor turns a flag off in production alone (emergency off) with a reason, skipping approval", async (t) => {
    if (!browser) return t.skip("no browser");
    // Alice has a request open on the same flag (it goes stale below).
    const live = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/production/flags/dark-mode");
    const pending = await platform.admin("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/dark-mode", {
      config: { ...live.config.config, targets: [{ variant: "on", values: ["alice-qa"] }] }, revision: live.config.revision, comment: "alice's QA target",
    }, aliceToken);
    staleCR = pending.changeRequest.id;
    await page.goto(`${platform.url}/o/acme/p/web/flags/dark-mode/production`);
    await page.getByRole("button", { name: "Emergency off in production" }).click();
    const dialog = page.getByRole("dialog", { name: "Turn dark-mode off in production now?" });
    await dialog.getByLabel("Reason (recorded in the audit log)").fill("contrast bug on checkout");
    await dialog.getByLabel("Type the environment (production) to confirm").fill("production");
    await dialog.getByRole("button", { name: "Turn off in production" }).click();
    await page.getByRole("status").filter({ hasText: "dark-mode is off in production (emergency off)" }).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("production", "dark-mode", { targetingKey: "u" })).reason, "DISABLED"));
    // Staging is untouched.
    assert.equal((await platform.evaluate("staging", "dark-mode", { targetingKey: "u" })).variant, "on");
  });

  it("a request made stale by a later change cannot be applied until its author rebases it", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, platform.url, aliceToken);
    await page.goto(`${platform.url}/o/acme/p/web/changes/production/${staleCR}`);
    const alert = page.getByRole("alert").filter({ hasText: "changed since this request was made" });
    await alert.waitFor();
    assert.equal(await page.getByRole("button", { name: "Apply" }).isDisabled(), true);
    await checkA11y(page, "stale change request");
    await alert.getByRole("button", { name: "Rebase onto the live revision" }).click();
    await page.getByRole("status").filter({ hasText: "Rebased onto revision" }).waitFor();
    await alert.waitFor({ state: "detached" });
  });

  it("an admin creates an SDK key, sees its secret once, and revokes it", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, platform.url, platform.token);
    await page.getByRole("link", { name: "SDK keys" }).click();
    await page.getByLabel("Environment").selectOption("staging");
    await page.getByLabel("Key name").fill("checkout service");
    await page.getByRole("button", { name: "Create SDK key" }).click();
    const shown = page.getByRole("region", { name: /New SDK key “checkout service”/ });
    const secret = (await shown.getByTestId("secret").textContent()).trim();
    assert.match(secret, /^ffsk_/);
    await checkA11y(page, "SDK keys");
    await screenshot(page, "sdk-keys");
    // The new key works on the evaluator once published.
    const ask = (key) => fetch(`${platform.evalUrl}/v1/evaluate`, {
      method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ flagKey: "dark-mode", context: { targetingKey: "u" } }),
    });
    await eventually(async () => assert.equal((await ask(secret)).status, 200));
    // Shown once: dismissed, and gone after a reload; the list shows only its prefix.
    await shown.getByRole("button", { name: "I have stored it" }).click();
    await page.reload();
    const row = page.getByRole("row", { name: /checkout service/ });
    await row.waitFor();
    assert.equal(await page.getByText(secret).count(), 0);
    assert.ok(secret.startsWith((await row.locator("td.font-mono").textContent()).replace("…", "")));
    await row.getByRole("button", { name: "Revoke checkout service" }).click();
    await row.getByRole("button", { name: "Confirm revoke checkout service" }).click();
    await page.getByRole("status").filter({ hasText: "revoked" }).waitFor();
    await eventually(async () => assert.equal((await ask(secret)).status, 401));
  });

  it("shows what someone else changes, live, without a reload", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags`);
    const row = page.getByRole("row", { name: /dark-mode/ });
    await row.getByRole("link", { name: /^dark-mode in development: off/ }).waitFor();
    const cfg = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/development/flags/dark-mode");
    await platform.admin("PUT", "/v1/orgs/acme/projects/web/environments/development/flags/dark-mode", {
      config: { on: true, offVariant: "off", defaultServe: { variant: "on" } }, revision: cfg.config.revision, comment: "bob's edit",
    }, bobToken);
    await row.getByRole("link", { name: /^dark-mode in development: on/ }).waitFor({ timeout: 10000 });
    await page.getByTestId("live-change").filter({ hasText: "bob@acme.test" }).waitFor();
  });

  it("an admin sets an environment's approvals, adds a member, and mints an API token shown once", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("link", { name: "Settings" }).click();
    await page.getByLabel("Changes in development need approval").check();
    await page.getByLabel("Approvals needed in development").fill("2");
    await page.getByRole("button", { name: "Save development" }).click();
    await page.getByRole("status").filter({ hasText: "Saved development" }).waitFor();
    const dev = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/development");
    assert.equal(dev.environment.settings.approvalsRequired, true);
    assert.equal(dev.environment.settings.requiredApprovals, 2);

    await page.getByLabel("Email").fill("carol@acme.test");
    await page.getByLabel("Role in the organization").selectOption("ROLE_VIEWER");
    await page.getByRole("button", { name: "Add member" }).click();
    await page.getByRole("row", { name: /carol@acme\.test Viewer of the organization/ }).waitFor();

    await page.getByLabel("Token name").fill("ci pipeline");
    await page.getByRole("button", { name: "Create API token" }).click();
    const secret = (await page.getByRole("region", { name: /New API token “ci pipeline”/ }).getByTestId("secret").textContent()).trim();
    const orgs = (token) => fetch(`${platform.url}/v1/orgs`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal((await orgs(secret)).status, 200);
    await checkA11y(page, "settings");
    await screenshot(page, "settings");
    await page.getByRole("button", { name: "I have stored it" }).click();
    assert.equal(await page.getByText(secret).count(), 0);
    await page.getByRole("button", { name: "Revoke token ci pipeline" }).click();
    await page.getByRole("button", { name: "Confirm revoke token ci pipeline" }).click();
    await page.getByRole("row", { name: /ci pipeline/ }).getByText("revoked").waitFor();
    assert.equal((await orgs(secret)).status, 401);
  });

  it("a segment of listed users in staging, used by a rule, decides on the evaluator", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.getByRole("link", { name: "Segments" }).click();
    await page.getByRole("heading", { name: "Segments" }).waitFor();
    await page.getByRole("combobox", { name: /^Environment/ }).selectOption("staging");
    await page.getByRole("button", { name: "New segment" }).click();
    await page.getByLabel("Segment key").fill("beta-testers");
    await page.getByLabel("Description").fill("people who asked for early access");
    await page.getByLabel("Always included (targetingKey)").fill("vip-1\nvip-2");
    await page.getByRole("button", { name: "Create segment" }).click();
    await page.getByRole("status").filter({ hasText: "Created segment beta-testers" }).waitFor();
    await page.getByRole("row", { name: /beta-testers/ }).waitFor();
    await checkA11y(page, "segments");

    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    await page.getByRole("switch", { name: "Serve targeting in staging" }).check();
    await page.getByRole("button", { name: "Add rule" }).click();
    await page.getByLabel("Rule 1 condition 1 operator").selectOption({ label: "is in segment" });
    await page.getByLabel("Rule 1 condition 1 values").fill("beta-testers");
    await page.getByLabel("Rule 1 serves").selectOption("on");
    assert.equal(await page.getByTestId("rule-1-summary").textContent(), "If context is in segment beta-testers → serve on");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    await eventually(async () => {
      const d = await platform.evaluate("staging", "checkout", { targetingKey: "vip-2" });
      assert.deepEqual([d.variant, d.reason, d.ruleId], ["on", "TARGETING_MATCH", "rule-1"]);
    });
    assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "nobody" })).variant, "off");

    // A segment in use cannot be deleted: the server says why.
    await page.getByRole("link", { name: "Segments" }).click();
    await page.getByRole("heading", { name: "Segments" }).waitFor();
    await page.getByRole("combobox", { name: /^Environment/ }).selectOption("staging");
    await page.getByRole("button", { name: "Delete beta-testers" }).click();
    await page.getByRole("button", { name: "Confirm delete beta-testers" }).click();
    await page.getByRole("alert").waitFor();
    await page.getByRole("row", { name: /beta-testers/ }).waitFor();
  });

  it("an admin adds a webhook and reads its delivery log", async (t) => {
    if (!browser) return t.skip("no browser");
    const received = [];
    const receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => { received.push({ headers: req.headers, body }); res.writeHead(204).end(); });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
    t.after(() => new Promise((r) => receiver.close(r)));
    const hookUrl = `http://127.0.0.1:${receiver.address().port}/hooks/flagforge`;
    await page.getByRole("link", { name: "Webhooks" }).click();
    await page.getByLabel("Webhook URL").fill(hookUrl);
    await page.getByRole("button", { name: "Create webhook" }).click();
    const secret = (await page.getByRole("region", { name: /Signing secret of/ }).getByTestId("secret").textContent()).trim();
    assert.ok(secret.length >= 16, "no signing secret shown");
    await page.getByRole("button", { name: "I have stored it" }).click();
    // A change in the project is delivered and logged.
    const cfg = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/development/flags/dark-mode");
    await platform.admin("PUT", "/v1/orgs/acme/projects/web/environments/development/flags/dark-mode", {
      config: { on: false, offVariant: "off", defaultServe: { variant: "on" } }, revision: cfg.config.revision,
    });
    await eventually(async () => assert.ok(received.length > 0, "the receiver got nothing"), 20000);
    await page.getByRole("button", { name: `Deliveries of ${hookUrl}` }).click();
    const log = page.getByRole("table", { name: `Deliveries of ${hookUrl}` });
    await log.getByRole("row").filter({ hasText: "delivered" }).filter({ hasText: "204" }).first().waitFor({ timeout: 20000 });
    await checkA11y(page, "webhooks");
    await screenshot(page, "webhooks");
  });

  it("an edit based on an old revision is never saved over someone else's: reload theirs or keep mine knowingly", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/dark-mode/staging`);
    await page.getByLabel("Targets served on").fill("tester-1");
    await page.getByText("1 unsaved change").waitFor();
    // Bob changes the same flag meanwhile.
    const cfg = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/staging/flags/dark-mode");
    await platform.admin("PUT", "/v1/orgs/acme/projects/web/environments/staging/flags/dark-mode", {
      config: { ...cfg.config.config, targets: [{ variant: "off", values: ["bob-test"] }] }, revision: cfg.config.revision, comment: "bob",
    }, bobToken);
    // The page says so (live), and saving would be refused anyway.
    const conflict = page.getByRole("alert").filter({ hasText: "Someone changed this flag in staging since you started editing" });
    await conflict.waitFor();
    await checkA11y(page, "flag page (conflict)");
    await conflict.getByRole("button", { name: "Keep my changes on top of theirs" }).click();
    await conflict.waitFor({ state: "detached" });
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    const now = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/staging/flags/dark-mode");
    assert.deepEqual(now.config.config.targets, [{ variant: "on", values: ["tester-1"] }]);
    assert.equal(Number(now.config.revision), Number(cfg.config.revision) + 2);
  });

  it("a change scheduled a few seconds ahead is applied at its time", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/dark-mode/staging`);
    await page.getByRole("switch", { name: "Serve targeting in staging" }).uncheck();
    const at = await page.evaluate(() => {
      const d = new Date(Date.now() + 6000);
      const p = (n) => String(n).padStart(2, "0");
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
    });
    await page.getByLabel("Schedule for (your time)").fill(at);
    await page.getByRole("button", { name: "Schedule", exact: true }).click();
    await page.getByRole("status").filter({ hasText: "Scheduled for" }).waitFor();
    await page.getByRole("link", { name: "Schedules" }).click();
    await page.getByRole("combobox", { name: /^Environment/ }).selectOption("staging");
    const row = page.getByRole("row", { name: /dark-mode/ });
    await row.waitFor();
    await checkA11y(page, "schedules");
    await eventually(async () => assert.equal((await platform.evaluate("staging", "dark-mode", { targetingKey: "someone" })).reason, "DISABLED"), 20000);
    await row.getByText("applied").waitFor({ timeout: 15000 });
  });

  it("a prerequisite that is not met stops the flag; a cycle is refused with the field", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    await page.getByRole("button", { name: "Add prerequisite" }).click();
    await page.getByLabel("Prerequisite 1 flag").selectOption("dark-mode");
    assert.equal(await page.getByRole("group", { name: "Prerequisite 1 must serve" }).getByLabel("on").isChecked(), true);
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved" }).waitFor();
    // dark-mode is off in staging (the schedule turned it off): checkout's prerequisite fails.
    await eventually(async () => assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "vip-2" })).reason, "PREREQUISITE_FAILED"));

    await page.goto(`${platform.url}/o/acme/p/web/flags/dark-mode/staging`);
    await page.getByRole("button", { name: "Add prerequisite" }).click();
    await page.getByLabel("Prerequisite 1 flag").selectOption("checkout");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("alert").filter({ hasText: "config.prerequisites" }).waitFor();
    assert.equal(await page.getByLabel("Prerequisite 1 flag").getAttribute("aria-invalid"), "true");
  });

  it("is usable on a narrow screen", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${platform.url}/o/acme/p/web/flags`);
    await page.getByRole("row", { name: /checkout/ }).waitFor();
    await checkA11y(page, "flags list (narrow)");
    await screenshot(page, "flags-list-narrow");
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});
