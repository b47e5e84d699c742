// Access in the console: roles (what a role may not do is disabled with the
// reason, and still refused by the server), members and role grants at every
// scope, webhooks' "send test" and "redeliver", and single sign-on with a real
// OIDC provider (bin/flagforge-testidp) including signing in again after the ID
// token expires without losing an unsaved draft.
import assert from "node:assert/strict";
import http from "node:http";
import { after, before, describe, it } from "node:test";
import { checkA11y, eventually, launch, screenshot, signIn, startPlatform } from "./harness.mjs";

// signInFresh forgets any session of the tab, then signs in with token.
async function signInFresh(page, url, token) {
  await page.goto(url + "/");
  await page.evaluate(() => sessionStorage.clear());
  await signIn(page, url, token);
  await page.getByRole("heading", { name: "Flags", exact: true }).waitFor();
}

// memberToken adds a member with an organization role and mints an API token for it.
async function memberToken(platform, email, role) {
  const m = await platform.admin("POST", "/v1/orgs/acme/members", { member: { email }, role });
  const t = await platform.admin("POST", "/v1/orgs/acme/api-tokens", { name: email, memberId: m.member.id });
  return { id: m.member.id, token: t.secret };
}

describe("roles, members and webhooks in the console", () => {
  let platform, browser, context, page, viewer, receiver, received;

  before(async (t) => {
    platform = await startPlatform();
    browser = await launch(t);
    if (!browser) return;
    context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    viewer = await memberToken(platform, "vera@acme.test", "ROLE_VIEWER");
    received = [];
    receiver = http.createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received.push(JSON.parse(body));
        res.writeHead(received.length === 1 ? 204 : 503).end();
      });
    });
    await new Promise((r) => receiver.listen(0, "127.0.0.1", r));
  });
  after(async () => {
    await browser?.close();
    receiver?.close();
    await platform?.stop();
  });

  it("a viewer sees what their role may not do disabled, with the reason; forced, the server still refuses", async (t) => {
    if (!browser) return t.skip("no browser");
    await signInFresh(page, platform.url, viewer.token);
    await page.goto(`${platform.url}/o/acme/p/web/segments?env=staging`);
    const create = page.getByRole("button", { name: "New segment" });
    await create.waitFor();
    await eventually(async () => assert.equal(await create.isDisabled(), true));
    const reason = page.getByTestId("denied-reason").first();
    assert.match(await reason.innerText(), /Your role in web\/staging is viewer: needs the editor role or above \(write on segment is not allowed for role ROLE_VIEWER\)/);
    // The reason is the control's accessible description.
    assert.equal(await create.getAttribute("aria-describedby"), "seg-denied");
    await checkA11y(page, "segments as a viewer");
    await screenshot(page, "viewer-segments");
    // Webhooks: nothing listed that the role may not read, creation disabled with the reason.
    await page.goto(`${platform.url}/o/acme/p/web/webhooks`);
    await page.getByText("The webhooks are not listed: Your role in project web is viewer: needs the admin role or above").waitFor();
    assert.equal(await page.getByRole("button", { name: "Create webhook" }).isDisabled(), true);
    assert.equal(await page.getByLabel("Webhook URL").isDisabled(), true);
    await checkA11y(page, "webhooks as a viewer");
    // Forced: re-enable the form in the page and submit it anyway; the server refuses, and says why, in the form.
    const form = page.getByRole("form", { name: "New webhook" });
    await form.locator("fieldset").evaluate((f) => f.removeAttribute("disabled"));
    await page.getByLabel("Webhook URL").fill("http://127.0.0.1:9/forced");
    await form.evaluate((f) => f.requestSubmit());
    await form.getByRole("alert").filter({ hasText: "write on webhook is not allowed for role ROLE_VIEWER" }).waitFor();
    const hooks = await platform.admin("GET", "/v1/orgs/acme/projects/web/webhooks");
    assert.equal((hooks.webhooks ?? []).length, 0);

    await page.goto(`${platform.url}/o/acme/p/web/keys?env=production`);
    await page.getByText("The SDK keys of production are not listed").waitFor();
    assert.equal(await page.getByRole("button", { name: "Create SDK key" }).isDisabled(), true);
    await page.goto(`${platform.url}/o/acme/p/web/settings`);
    await page.getByText("Your role in acme is viewer: needs the admin role or above").first().waitFor();
    await eventually(async () => {
      assert.equal(await page.getByRole("button", { name: "Grant role" }).isDisabled(), true);
      assert.equal(await page.getByRole("button", { name: "Add member" }).isDisabled(), true);
      assert.equal(await page.getByRole("button", { name: "Save production" }).isDisabled(), true);
    });
    await checkA11y(page, "settings as a viewer");
    await screenshot(page, "viewer-settings");
    await page.getByRole("button", { name: "Sign out" }).click();
  });

  it("an admin grants and revokes roles at project and environment scope, and the member's rights follow", async (t) => {
    if (!browser) return t.skip("no browser");
    await signInFresh(page, platform.url, platform.token);
    await page.goto(`${platform.url}/o/acme/p/web/settings`);
    const grant = page.getByRole("form", { name: "Grant a role" });
    await grant.getByLabel("Member").selectOption({ label: "vera@acme.test" });
    await grant.getByLabel("Role").selectOption({ label: "Editor" });
    await grant.getByLabel("Scope").selectOption({ label: "Environment web/staging" });
    await grant.getByRole("button", { name: "Grant role" }).click();
    await page.getByRole("status").filter({ hasText: "vera@acme.test is now editor of environment web/staging." }).waitFor();
    const row = page.getByRole("row", { name: /vera@acme\.test/ });
    await row.getByText("Editor of environment web/staging", { exact: true }).waitFor();
    await row.getByText("Viewer of the organization", { exact: true }).waitFor();
    // The server answers the member's new rights from the same checks it enforces.
    const perms = await platform.admin("GET", "/v1/orgs/acme/me/permissions?project=web&environment=staging", undefined, viewer.token);
    assert.equal(perms.role, "ROLE_EDITOR");
    await platform.admin("POST", "/v1/orgs/acme/projects/web/environments/staging/segments", { segment: { key: "vera-can", included: ["u1"] } }, viewer.token);
    await checkA11y(page, "settings: members and roles");
    await screenshot(page, "settings-members");
    // Revoke (second click confirms): back to viewer in staging.
    await row.getByRole("button", { name: "Revoke Editor of environment web/staging from vera@acme.test" }).click();
    await row.getByRole("button", { name: "Confirm revoke Editor of environment web/staging from vera@acme.test" }).click();
    await eventually(async () => assert.equal(await row.getByText("Editor of environment web/staging", { exact: true }).count(), 0));
    const after = await platform.admin("GET", "/v1/orgs/acme/me/permissions?project=web&environment=staging", undefined, viewer.token);
    assert.equal(after.role, "ROLE_VIEWER");
    // A refused grant shows the server's reason where it was tried: an admin may not make owners.
    const admin2 = await memberToken(platform, "ada@acme.test", "ROLE_ADMIN");
    await signInFresh(page, platform.url, admin2.token);
    await page.goto(`${platform.url}/o/acme/p/web/settings`);
    await grant.getByLabel("Role").selectOption({ label: "Owner" });
    await grant.getByLabel("Scope").selectOption({ label: "Project web" });
    await eventually(async () => assert.equal(await grant.getByRole("button", { name: "Grant role" }).isDisabled(), true));
    await grant.getByText("needs the owner role or above").waitFor();
    await page.getByRole("button", { name: "Sign out" }).click();
  });

  it("an admin sends a test to a webhook and redelivers a delivery; the log shows each result", async (t) => {
    if (!browser) return t.skip("no browser");
    await signInFresh(page, platform.url, platform.token);
    await page.goto(`${platform.url}/o/acme/p/web/webhooks`);
    const hookUrl = `http://127.0.0.1:${receiver.address().port}/hook`;
    await page.getByLabel("Webhook URL").fill(hookUrl);
    await page.getByLabel(/Event types/).fill("segment.created");
    await page.getByRole("button", { name: "Create webhook" }).click();
    await page.getByRole("button", { name: "I have stored it" }).click();
    await page.getByRole("button", { name: `Send test to ${hookUrl}` }).click();
    await page.getByRole("status").filter({ hasText: `Test delivery sent to ${hookUrl}` }).waitFor();
    const log = page.getByRole("table", { name: `Deliveries of ${hookUrl}` });
    await log.getByRole("row", { name: /webhook\.test delivered 1 204/ }).waitFor({ timeout: 15000 });
    assert.equal(received.length, 1);
    assert.equal(received[0].type, "webhook.test");
    // Redeliver: the same event again; the receiver now answers 503 and the row says so.
    await log.getByRole("button", { name: /^Redeliver webhook\.test/ }).click();
    await page.getByRole("status").filter({ hasText: "queued again" }).waitFor();
    await log.getByRole("row", { name: /webhook\.test retrying 2 503/ }).waitFor({ timeout: 15000 });
    assert.equal(received[1].id, received[0].id);
    await checkA11y(page, "webhooks: delivery log");
    await screenshot(page, "webhooks-deliveries");
    await page.setViewportSize({ width: 390, height: 844 });
    await checkA11y(page, "webhooks at 390 px");
    await page.setViewportSize({ width: 1280, height: 900 });
  });
});

describe("single sign-on (OIDC, authorization code + PKCE)", () => {
  let platform, browser, page;
  const ttlSeconds = 20;

  before(async (t) => {
    platform = await startPlatform({ oidc: { tokenTTL: `${ttlSeconds}s` } });
    browser = await launch(t);
    if (!browser) return;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(10000);
    await platform.admin("POST", "/v1/orgs/acme/members", { member: { email: "sam@acme.test" }, role: "ROLE_EDITOR" });
  });
  after(async () => {
    await browser?.close();
    await platform?.stop();
  });

  // ssoPopup completes the identity provider's page in the pop-up that click opens.
  async function ssoPopup(click) {
    const [popup] = await Promise.all([page.waitForEvent("popup"), click()]);
    await popup.getByLabel("Email").fill("sam@acme.test");
    await Promise.all([popup.waitForEvent("close"), popup.getByRole("button", { name: "Continue" }).click()]);
  }

  it("signs in at the identity provider, and signs in again after the ID token expires keeping an unsaved draft", async (t) => {
    if (!browser) return t.skip("no browser");
    await page.goto(platform.url + "/");
    await page.getByLabel("Organization").fill("acme");
    await checkA11y(page, "sign-in with single sign-on");
    await screenshot(page, "sign-in-sso");
    const signedIn = Date.now();
    await ssoPopup(() => page.getByRole("button", { name: "Sign in with single sign-on" }).click());
    await page.getByRole("heading", { name: "Flags", exact: true }).waitFor();
    // The session holds an ID token, for this tab only.
    const stored = await page.evaluate(() => [sessionStorage.getItem("flagforge.method"), localStorage.getItem("flagforge.token")]);
    assert.deepEqual(stored, ["oidc", null]);

    // A draft: a new segment typed but not saved.
    await page.goto(`${platform.url}/o/acme/p/web/segments?env=staging`);
    await page.getByRole("button", { name: "New segment" }).click();
    await page.getByLabel("Segment key").fill("sso-draft");
    await page.getByLabel("Description").fill("typed before the token expired");
    // Wait out the token, then save: the API refuses it and the console asks to sign in again, over the page.
    const exp = await page.evaluate(() => JSON.parse(atob(sessionStorage.getItem("flagforge.token").split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).exp);
    assert.ok(exp * 1000 - signedIn <= (ttlSeconds + 60) * 1000, "the ID token lives as the provider was told");
    await new Promise((r) => setTimeout(r, Math.max(0, exp * 1000 + 2000 - Date.now())));
    await page.getByRole("button", { name: "Create segment" }).click();
    const dialog = page.getByRole("dialog", { name: "Your session has expired" });
    await dialog.waitFor();
    await checkA11y(page, "re-authentication dialog");
    await screenshot(page, "reauth");
    await ssoPopup(() => dialog.getByRole("button", { name: "Sign in with single sign-on" }).click());
    await dialog.waitFor({ state: "detached" });
    // The draft is intact; saving it now works.
    assert.equal(await page.getByLabel("Segment key").inputValue(), "sso-draft");
    assert.equal(await page.getByLabel("Description").inputValue(), "typed before the token expired");
    await page.getByRole("button", { name: "Create segment" }).click();
    await page.getByRole("status").filter({ hasText: "Created segment sso-draft." }).waitFor();
    const seg = await platform.admin("GET", "/v1/orgs/acme/projects/web/environments/staging/segments/sso-draft");
    assert.equal(seg.segment.description, "typed before the token expired");
    // The audit names the member the identity provider vouched for.
    const audit = await platform.admin("GET", "/v1/orgs/acme/audit?resource=projects/web/environments/staging/segments/sso-draft");
    assert.equal(audit.entries[0].actorName, "sam@acme.test");
  });
});
