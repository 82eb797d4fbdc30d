// demo.e2e.mjs - the demo page as people use it: several users in headless
// Chromium (one browser context each) on the same order, against the real
// gateway, processor, Kafka and Redis that run_e2e.py started. Each test
// works on an order of its own and saves a screenshot into PX_E2E_SHOTS.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { TENANT, control, launch, openAs, shot, stripUsers, until, uniqueOrder, waitState, waitStrip } from "./lib.mjs";

let browser;
let pages = []; // the pages of the running test, closed after it
async function open(user, order, opts) {
  const p = await openAs(browser, user, order, opts);
  pages.push(p);
  return p;
}

before(async () => { browser = await launch(); });
afterEach(async () => {
  const open = pages.filter((p) => !p.isClosed());
  pages = [];
  for (const p of open) {
    // a killed gateway makes the browser log failed WebSocket connections: expected
    const errs = p.consoleErrors.filter((e) => !/WebSocket connection|ERR_CONNECTION_REFUSED/.test(e));
    await p.context().close();
    assert.deepEqual(errs, [], `${p.user}: errors in the page's console`);
  }
});
after(async () => { await browser?.close(); });

const lockText = (page, field) => page.locator(`[data-lock=${field}]`).innerText();
const formDisabled = (page) => page.evaluate(() => document.querySelector("#fields").disabled);

test("two users on one order see each other appear; a fourth and fifth show as +N", async () => {
  const order = uniqueOrder("view");
  const alice = await open("alice", order);
  await until(alice, () => document.querySelector(".nobody") !== null, null, "'nobody else' while alone");
  const bob = await open("bob", order);
  await waitStrip(alice, ["bob"], "alice sees bob");
  await waitStrip(bob, ["alice"], "bob sees alice");
  assert.equal(await bob.locator("[data-user=alice]").innerText(), "AL");
  assert.match(await alice.locator("[data-user=bob]").getAttribute("title"), /^Bob/);

  // bob types: alice sees the editing badge on him
  await bob.locator("#f-notes").fill("Ship in two boxes.");
  await until(alice, () => !!document.querySelector("[data-user=bob] [data-testid=editing]"), null, "bob's editing badge");

  // three more: alice sees three avatars and +1 (others: bob, carol, dave, erin)
  const more = [];
  for (const u of ["carol", "dave", "erin"]) more.push(await open(u, order));
  await until(alice, () => document.querySelector("[data-testid=more]")?.textContent === "+1", null, "+1 in alice's strip");
  assert.equal((await stripUsers(alice)).length, 3);
  await shot(alice, "e2e-who-is-viewing");
  await shot(bob, "e2e-two-users-bob");
  for (const p of more) await p.close();
  await until(alice, () => !document.querySelector("[data-testid=more]"), null, "+N gone after three left");
  await waitStrip(alice, ["bob"], "only bob again");
});

test("a field alice focuses is locked for bob, who cannot take it; after alice's blur bob can", async () => {
  const order = uniqueOrder("lock");
  const alice = await open("alice", order);
  const bob = await open("bob", order);
  await waitStrip(bob, ["alice"]);

  await alice.locator("#f-amount").focus();
  await until(alice, () => document.querySelector("[data-lock=amount]").textContent.includes("you"), null, "alice holds amount");
  await until(bob, () => document.querySelector("#f-amount").disabled, null, "amount disabled for bob");
  assert.match(await lockText(bob, "amount"), /Alice/);
  assert.equal(await bob.locator("#f-amount").getAttribute("title"), "locked by Alice");
  assert.equal(await bob.locator("#f-customer").isDisabled(), false, "other fields stay editable");
  // bob asks for it anyway (what a focus would do): denied, naming alice
  const r = await bob.evaluate(() => window.presenceDemo.client.acquireLock("amount"));
  assert.equal(r.granted, false);
  assert.equal(r.holder.id, "alice");
  assert.equal(r.token, null);
  await shot(bob, "e2e-field-locked");

  await alice.locator("#f-amount").blur();
  await until(bob, () => !document.querySelector("#f-amount").disabled, null, "amount enabled for bob after alice's blur");
  await bob.locator("#f-amount").focus();
  await until(bob, () => document.querySelector("[data-lock=amount]").textContent.includes("you"), null, "bob holds amount");
  await until(alice, () => document.querySelector("#f-amount").disabled &&
    document.querySelector("[data-lock=amount]").textContent.includes("Bob"), null, "alice sees Bob's lock");
  const a = await alice.evaluate(() => window.presenceDemo.client.acquireLock("amount"));
  assert.equal(a.granted, false);
  assert.equal(a.holder.id, "bob");
  await bob.locator("#f-amount").blur();
  await until(alice, () => !document.querySelector("#f-amount").disabled, null, "amount free for alice again");
});

test("MUTATING shows bob the stale banner naming alice and disables the form; MUTATED clears it and bumps the version", async () => {
  const order = uniqueOrder("stale");
  const alice = await open("alice", order);
  const bob = await open("bob", order);
  await waitStrip(bob, ["alice"]);
  const v0 = Number(await bob.locator("#version").innerText());
  const key = `${TENANT}:order:${order}`;

  await control("/lifecycle", { key, type: "MUTATING", busy_by: "alice", write_id: "w1" });
  await until(bob, () => document.querySelector("[data-testid=stale-banner]").classList.contains("show"), null, "stale banner");
  assert.match(await bob.locator("[data-testid=stale-banner]").innerText(), /being modified by Alice/);
  assert.equal(await formDisabled(bob), true);
  assert.equal(await bob.locator("#f-customer").isDisabled(), true);
  await shot(bob, "e2e-stale");

  await control("/lifecycle", { key, type: "MUTATED", write_id: "w1" });
  await until(bob, (v) => !document.querySelector("[data-testid=stale-banner]").classList.contains("show") &&
    document.querySelector("#version").textContent === String(v + 1), v0, "banner gone and version bumped");
  assert.equal(await formDisabled(bob), false);
  assert.equal(await alice.locator("#version").innerText(), String(v0 + 1));
});

test("alice closes her tab and disappears from bob's strip", async () => {
  const order = uniqueOrder("close");
  const alice = await open("alice", order);
  const bob = await open("bob", order);
  await waitStrip(bob, ["alice"]);
  await alice.close({ runBeforeUnload: true });
  await waitStrip(bob, [], "alice gone from bob's strip");
  await until(bob, () => document.querySelector(".nobody") !== null, null, "'nobody else'");
  await shot(bob, "e2e-tab-closed");
});

test("killing and restarting the gateway: both pages reconnect by themselves", async () => {
  const order = uniqueOrder("restart");
  const alice = await open("alice", order);
  const bob = await open("bob", order);
  await waitStrip(bob, ["alice"]);
  await waitStrip(alice, ["bob"]);

  await control("/gateway/kill");
  for (const p of [alice, bob]) {
    await until(p, () => document.querySelector("[data-testid=conn]").dataset.state !== "live", null, "not live after the kill");
  }
  assert.equal(await formDisabled(bob), true, "the form is disabled while offline");
  await shot(bob, "e2e-reconnecting");
  await control("/gateway/start");
  for (const p of [alice, bob]) await waitState(p, "live");
  await waitStrip(bob, ["alice"], "bob sees alice after the restart");
  await waitStrip(alice, ["bob"], "alice sees bob after the restart");

  // re-subscribed for real: a lock still travels from one page to the other
  await alice.locator("#f-customer").focus();
  await until(alice, () => document.querySelector("[data-lock=customer]").textContent.includes("you"), null, "alice holds customer after the restart");
  await until(bob, () => document.querySelector("#f-customer").disabled, null, "alice's lock seen by bob after the restart");
  await shot(bob, "e2e-reconnected");
  await alice.locator("#f-customer").blur();
  await until(bob, () => !document.querySelector("#f-customer").disabled, null, "released after the restart");
});
