// Drafts, history and roles on the flag pages, driven in Chromium against a real
// control plane and evaluator: an unsaved targeting edit survives a reload; the
// flag's History tab lists revisions with who/when/why, diffs any two and
// reverts; an environment is rolled back to a manifest version after a preview
// (a change request where approvals are required); a viewer sees the flags list,
// flag page, history, rollback and change requests disabled with the reason,
// and the server still refuses a save forced past them.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

const cfgURL = (env, flag) => `/v1/orgs/acme/projects/web/environments/${env}/flags/${flag}`;
const envURL = (env) => `/v1/orgs/acme/projects/web/environments/${env}`;

async function memberToken(platform, email, role) {
  const m = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email }, role });
  return (await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: email, memberId: m.member.id })).secret;
}

async function signInFresh(page, url, token) {
  await page.goto(url + "/");
  await page.evaluate(() => sessionStorage.clear());
  await signIn(page, url, token);
  await page.getByRole("heading", { name: "Flags", exact: true }).waitFor();
}

describe("drafts, history, rollback and roles on the flag pages", () => {
  let platform, browser, page, viewerToken, editorToken;

  before(async (t) => {
    platform = await startPlatform();
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    await platform.admin("POST", "/v1/orgs/acme/projects/web/flags", { flag: { key: "checkout", type: "FLAG_TYPE_BOOLEAN" } });
    viewerToken = await memberToken(platform, "vera@acme.test", "ROLE_VIEWER");
    editorToken = await memberToken(platform, "erin@acme.test", "ROLE_EDITOR");
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  it("an unsaved targeting edit survives a reload, can be discarded, and is cleared on save", async (t) => {
    if (!browser) return t.skip("no browser");
    await signInFresh(page, platform.url, platform.token);
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    const edit = async () => {
      await page.getByRole("switch", { name: "Serve targeting in staging" }).check();
      await page.getByLabel("Targets served on").fill("qa-1");
      await page.getByText("2 unsaved changes").waitFor();
    };
    await edit();
    await page.reload();
    const restored = page.getByRole("status").filter({ hasText: "Draft restored" });
    await restored.waitFor();
    await page.getByText("2 unsaved changes").waitFor();
    assert.equal(await page.getByRole("switch", { name: "Serve targeting in staging" }).isChecked(), true);
    assert.equal(await page.getByLabel("Targets served on").inputValue(), "qa-1");
    // Kept per organization, project, flag and environment, in this tab only.
    const keys = await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith("flagforge:draft:")));
    assert.deepEqual(keys, ["flagforge:draft:acme/web/checkout/staging"]);
    await checkA11y(page, "flag page (draft restored)");
    await screenshot(page, "flag-draft-restored");
    await restored.getByRole("button", { name: "Discard draft" }).click();
    await page.getByText("No unsaved changes").waitFor();
    await page.reload();
    await page.getByText("No unsaved changes").waitFor();
    assert.equal(await restored.count(), 0);

    // Saved: the draft is gone, the saved configuration is what loads.
    await edit();
    await page.reload();
    await restored.waitFor();
    await page.getByLabel("Comment").fill("QA in staging");
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("status").filter({ hasText: "Saved: checkout in staging is at revision 2" }).waitFor();
    await page.reload();
    await page.getByText("No unsaved changes").waitFor();
    assert.equal(await restored.count(), 0);
    assert.equal(await page.getByRole("switch", { name: "Serve targeting in staging" }).isChecked(), true);
    assert.equal(await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith("flagforge:draft:")).length), 0);
    await eventually(async () => assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "qa-1" })).reason, "TARGETING_MATCH"));
  });

  it("the History tab lists revisions with who, when and why, diffs any two and reverts to one", async (t) => {
    if (!browser) return t.skip("no browser");
    // Revision 3: an incident turns it off (through the API).
    const live = await platform.admin("GET", cfgURL("staging", "checkout"));
    await platform.admin("PUT", cfgURL("staging", "checkout"), { config: { ...live.config.config, on: false }, revision: live.config.revision, comment: "incident 42" });
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    await page.getByRole("link", { name: "History", exact: true }).click();
    await page.getByRole("heading", { name: "History of checkout in staging" }).waitFor();
    const table = page.getByRole("table", { name: "Revisions of checkout in staging" });
    const row3 = table.getByRole("row").filter({ hasText: "incident 42" });
    await row3.waitFor();
    assert.match(await row3.innerText(), /3 \(live\)/);
    assert.match(await row3.innerText(), /admin@acme\.test/);
    assert.match(await table.getByRole("row").filter({ hasText: "QA in staging" }).innerText(), /^2/);
    // By default: what the latest write changed (2 → 3).
    const diff = page.getByRole("table", { name: "Diff of revision 2 to 3" });
    await diff.getByText("/on").first().waitFor();
    // Any two: 1 → 3 shows the targets added as well.
    await page.getByLabel("Diff from revision 1").check();
    await page.getByRole("table", { name: "Diff of revision 1 to 3" }).getByText("/targets").first().waitFor();
    await checkA11y(page, "flag history");
    await screenshot(page, "flag-history");

    // Revert to revision 2: the configuration is exactly revision 2's again.
    await table.getByRole("button", { name: "Revert to 2…" }).click();
    await page.getByLabel("Why revert to 2").fill("undo incident switch-off");
    await page.getByRole("button", { name: "Confirm revert to 2" }).click();
    await page.getByRole("status").filter({ hasText: "Reverted checkout in staging to revision 2's configuration (now revision 4)" }).waitFor();
    await table.getByRole("row").filter({ hasText: "undo incident switch-off" }).waitFor();
    const revs = await platform.admin("GET", `${cfgURL("staging", "checkout")}/revisions`);
    const r2 = revs.revisions.find((r) => r.revision === "2");
    assert.equal(revs.revisions[0].revision, "4");
    assert.equal(revs.revisions[0].contentDigest, r2.contentDigest);
    await eventually(async () => assert.equal((await platform.evaluate("staging", "checkout", { targetingKey: "qa-1" })).reason, "TARGETING_MATCH"));
  });

  it("an environment is rolled back to a manifest version after a preview; where approvals are required it becomes a change request", async (t) => {
    if (!browser) return t.skip("no browser");
    // The version production serves now (checkout off), then checkout is turned on.
    const before = (await platform.admin("GET", envURL("production"))).environment.manifestVersion;
    const live = await platform.admin("GET", cfgURL("production", "checkout"));
    await platform.admin("PUT", cfgURL("production", "checkout"), {
      config: { ...live.config.config, on: true, defaultServe: { variant: "on" } }, revision: live.config.revision, comment: "launch",
    });
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", { targetingKey: "u" })).variant, "on"));
    await page.getByRole("link", { name: "Rollback", exact: true }).click();
    await page.getByRole("heading", { name: "Roll back an environment" }).waitFor();
    await page.getByLabel("Environment").selectOption("production");
    await page.getByLabel(/^Manifest version/).fill(String(before));
    await page.getByRole("button", { name: "Preview" }).click();
    const preview = page.getByRole("region", { name: new RegExp(`Preview: production back to manifest version ${before}: 1 change`) });
    await preview.waitFor();
    await preview.getByRole("list", { name: "What changes" }).getByText("Flag checkout: update").waitFor();
    await preview.getByRole("table").getByText("/on").first().waitFor();
    // A preview changes nothing.
    assert.equal((await platform.evaluate("production", "checkout", { targetingKey: "u" })).variant, "on");
    await checkA11y(page, "environment rollback (preview)");
    await screenshot(page, "environment-rollback");
    await preview.getByLabel(/^Why/).fill("launch broke checkout");
    await preview.getByRole("button", { name: "Roll back production" }).click();
    await page.getByRole("status").filter({ hasText: `Rolled back production to manifest version ${before}: 1 change(s) applied.` }).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", { targetingKey: "u" })).reason, "DISABLED"));

    // Protected production: on again, then the same rollback is proposed instead.
    const again = await platform.admin("GET", cfgURL("production", "checkout"));
    await platform.admin("PUT", cfgURL("production", "checkout"), {
      config: { ...again.config.config, on: true, defaultServe: { variant: "on" } }, revision: again.config.revision, comment: "relaunch",
    });
    const env = await platform.admin("GET", envURL("production"));
    await platform.admin("PATCH", envURL("production"), {
      settings: { approvalsRequired: true, requiredApprovals: 1, emergencyOffAllowed: true }, revision: env.environment.revision,
    });
    await page.reload();
    await page.getByLabel(/^Manifest version/).fill(String(before));
    await page.getByRole("button", { name: "Preview" }).click();
    await page.getByRole("button", { name: "Propose rolling back production (change request)" }).click();
    await page.getByRole("status").filter({ hasText: /production requires approval: change request \S+ proposes the rollback/ }).waitFor();
    await page.getByRole("link", { name: "Open the change request" }).waitFor();
    await eventually(async () => assert.equal((await platform.evaluate("production", "checkout", { targetingKey: "u" })).variant, "on"));
  });

  it("a viewer sees flag writes, reviews, reverts and rollbacks disabled with the reason; forced, the server refuses", async (t) => {
    if (!browser) return t.skip("no browser");
    // A change request by erin (editor) in protected production, for the review page.
    const live = await platform.admin("GET", cfgURL("production", "checkout"));
    const cr = await platform.admin("PUT", cfgURL("production", "checkout"), { config: { ...live.config.config, on: false }, revision: live.config.revision, comment: "erin's" }, editorToken);
    await signInFresh(page, platform.url, viewerToken);
    const reason = /Your role in .* is viewer: needs the editor role or above \(write on (flag|flag_config|change_request) is not allowed for role ROLE_VIEWER\)/;

    // Flags list: New flag and the bulk actions.
    const newFlag = page.getByRole("button", { name: "New flag" });
    await eventually(async () => assert.equal(await newFlag.isDisabled(), true));
    assert.equal(await newFlag.getAttribute("aria-describedby"), "new-flag-denied");
    assert.match(await page.locator("#new-flag-denied").innerText(), reason);
    await page.getByLabel("Select checkout").check();
    const bar = page.getByRole("region", { name: "Bulk actions" });
    await eventually(async () => assert.equal(await bar.getByRole("button", { name: "Turn off" }).isDisabled(), true));
    assert.equal(await bar.getByRole("button", { name: "Archive…" }).isDisabled(), true);
    assert.match(await bar.locator("#bulk-off-denied").innerText(), reason);
    await checkA11y(page, "flags list as a viewer");

    // Flag page: the targeting is read-only, Save, Kill everywhere and Emergency off disabled.
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging`);
    const sw = page.getByRole("switch", { name: "Serve targeting in staging" });
    await eventually(async () => assert.equal(await sw.isDisabled(), true));
    assert.equal(await page.getByLabel("Targets served on").isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Save changes" }).isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Kill everywhere" }).isDisabled(), true);
    assert.equal(await page.getByRole("button", { name: "Emergency off in staging" }).isDisabled(), true);
    assert.match(await page.locator("#flag-write-denied").innerText(), reason);
    await checkA11y(page, "flag page as a viewer");
    await screenshot(page, "viewer-flag-page");
    // When the page cannot tell (the permission lookup fails) the controls stay
    // enabled: the server still refuses the save, and the save bar says why.
    await page.route("**/me/permissions**", (r) => r.abort());
    await page.reload();
    await eventually(async () => assert.equal(await sw.isDisabled(), false));
    await sw.uncheck();
    await page.getByRole("button", { name: "Save changes" }).click();
    await page.getByRole("region", { name: "Save changes" }).getByRole("alert").filter({ hasText: "write on flag_config is not allowed for role ROLE_VIEWER" }).waitFor();
    assert.equal((await platform.admin("GET", cfgURL("staging", "checkout"))).config.config.on, true);
    await page.getByRole("button", { name: "Discard" }).click();
    await page.unroute("**/me/permissions**");

    // History: revert disabled; rollback: preview disabled.
    await page.goto(`${platform.url}/o/acme/p/web/flags/checkout/staging/history`);
    await eventually(async () => assert.equal(await page.getByRole("button", { name: "Revert to 1…" }).isDisabled(), true));
    assert.match(await page.locator("#revert-denied").innerText(), reason);
    await checkA11y(page, "flag history as a viewer");
    await page.goto(`${platform.url}/o/acme/p/web/rollback?env=staging`);
    await page.getByLabel(/^Manifest version/).fill("1");
    await eventually(async () => assert.equal(await page.getByRole("button", { name: "Preview" }).isDisabled(), true));
    assert.match(await page.locator("#rollback-denied").innerText(), reason);

    // Change request: approve, reject, apply, withdraw disabled for the viewer.
    await page.goto(`${platform.url}/o/acme/p/web/changes/production/${cr.changeRequest.id}`);
    const approve = page.getByRole("button", { name: "Approve" });
    await eventually(async () => assert.equal(await approve.isDisabled(), true));
    for (const name of ["Reject", "Apply", "Withdraw"]) assert.equal(await page.getByRole("button", { name }).isDisabled(), true, name);
    assert.match(await page.locator("#review-denied").innerText(), reason);
    await checkA11y(page, "change request as a viewer");

    // Erin, its author, sees why she may not approve it herself.
    await signInFresh(page, platform.url, editorToken);
    await page.goto(`${platform.url}/o/acme/p/web/changes/production/${cr.changeRequest.id}`);
    await eventually(async () => assert.equal(await page.getByRole("button", { name: "Approve" }).isDisabled(), true));
    assert.match(await page.locator("#approve-denied").innerText(), /You wrote this change request: another member must approve it \(four eyes\)/);
    assert.equal(await page.getByRole("button", { name: "Withdraw" }).isDisabled(), false);
  });
});
