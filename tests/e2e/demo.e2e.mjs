// demo.e2e.mjs - the demo page as people use it: several users in headless
// Chromium (one browser context each) on the same order, against the real
// gateway, processor, Kafka and Redis that run_e2e.py started. Each test
// works on an order of its own and saves a screenshot into PX_E2E_SHOTS.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";

import { PHONE, TENANT, control, launch, openAs, shot, stripUsers, until, uniqueOrder, viewerList, waitState, waitStrip }
  from "./lib.mjs";

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
const shown = (page, testid) => page.evaluate((t) => document.querySelector(`[data-testid=${t}]`).classList.contains("show"), testid);

test("two users on one order see each other appear, by face and name; a fourth and fifth show as +N", async () => {
  const order = uniqueOrder("view");
  const alice = await open("alice", order);
  await until(alice, () => document.querySelector(".nobody") !== null, null, "'nobody else' while alone");
  const bob = await open("bob", order);
  await waitStrip(alice, ["bob"], "alice sees bob");
  await waitStrip(bob, ["alice"], "bob sees alice");
  assert.equal(await bob.locator("[data-user=alice] .face").innerText(), "AL");
  assert.equal(await bob.locator("[data-user=alice] .name").innerText(), "Alice", "the name beside the face");
  assert.equal(await bob.locator("[data-user=alice] .name").isVisible(), true);
  assert.match(await alice.locator("[data-user=bob]").getAttribute("title"), /^Bob/);
  // the strip is a picture (aria-hidden); the named list says it in words
  assert.equal(await bob.locator("[data-testid=strip]").getAttribute("aria-hidden"), "true");
  assert.deepEqual(await viewerList(bob), ["Alice", "Bob (you)"]);
  const box = await bob.locator("[data-testid=viewers]").boundingBox();
  assert.ok(box.width <= 1 && box.height <= 1, `on a wide screen the list is read, not drawn: ${JSON.stringify(box)}`);

  // bob types: alice sees the editing badge on him
  await bob.locator("#f-notes").fill("Ship in two boxes.");
  await until(alice, () => !!document.querySelector("[data-user=bob] [data-testid=editing]"), null, "bob's editing badge");

  // three more: alice sees three avatars and +1 (others: bob, carol, dave, erin)
  const more = [];
  for (const u of ["carol", "dave", "erin"]) more.push(await open(u, order));
  await until(alice, () => document.querySelector("[data-testid=more]")?.textContent === "+1", null, "+1 in alice's strip");
  assert.equal((await stripUsers(alice)).length, 3);
  const names = await viewerList(alice); // everyone, the +1 too
  assert.equal(names.length, 5);
  assert.deepEqual([...names].sort(), ["Alice (you)", "Bob (editing)", "Carol", "Dave", "Erin"]);
  await shot(alice, "e2e-who-is-viewing");
  await shot(bob, "e2e-two-users-bob");
  for (const p of more) await p.close();
  await until(alice, () => !document.querySelector("[data-testid=more]"), null, "+N gone after three left");
  await waitStrip(alice, ["bob"], "only bob again");
});

test("on a phone (390 px) the form is one column of full-width inputs, with a 'Viewing:' line of names", async () => {
  const order = uniqueOrder("phone");
  const alice = await open("alice", order, { viewport: PHONE });
  const bob = await open("bob", order);
  await waitStrip(alice, ["bob"], "alice (phone) sees bob");
  const widths = await alice.$$eval("#fields input, #fields textarea",
    (els) => els.map((e) => [e.name, Math.round(e.getBoundingClientRect().width)]));
  assert.equal(widths.length, 4);
  for (const [field, w] of widths) assert.ok(w >= 150, `${field} is ${w} px wide at 390 px (want >= 150): ${JSON.stringify(widths)}`);
  const overflow = await alice.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow} px at 390 px`);
  // each label sits above its input (one column), not beside it
  const stacked = await alice.$$eval(".row", (rows) => rows.every((r) => {
    const l = r.querySelector("label").getBoundingClientRect(), i = r.querySelector("input, textarea").getBoundingClientRect();
    return l.bottom <= i.top + 1;
  }));
  assert.equal(stacked, true, "labels above their inputs");

  // names in words, shown: "Viewing: Bob (editing), Alice (you)" (the
  // commas are drawn by CSS between the list's items)
  await bob.locator("#f-notes").fill("Ship in two boxes.");
  await bob.locator("#f-amount").focus();
  await until(alice, () => /^Viewing:\s*Bob \(editing\)\s*Alice \(you\)$/.test(document.querySelector("[data-testid=viewers]").innerText.trim()),
    null, "alice's 'Viewing:' line names bob, editing, and herself");
  assert.equal(await alice.locator("[data-testid=viewers]").isVisible(), true);
  assert.deepEqual(await viewerList(alice), ["Bob (editing)", "Alice (you)"]);
  await until(alice, () => document.querySelector("#f-amount").disabled, null, "bob's lock on amount seen on the phone");
  assert.match(await lockText(alice, "amount"), /Bob/);
  await shot(alice, "e2e-phone");
  await bob.locator("#f-amount").blur();
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

test("MUTATING shows bob the stale banner naming alice and alice 'You are saving', form disabled; MUTATED clears it and bumps the version", async () => {
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
  // alice is the writer: the banner speaks to her, not about her
  await until(alice, () => document.querySelector("[data-testid=stale-banner]").classList.contains("show"), null, "alice's banner");
  const own = await alice.locator("[data-testid=stale-banner]").innerText();
  assert.match(own, /^You are saving this order/);
  assert.doesNotMatch(own, /Alice/);
  assert.equal(await formDisabled(alice), true);
  await shot(alice, "e2e-stale-you");

  await control("/lifecycle", { key, type: "MUTATED", write_id: "w1" });
  await until(bob, (v) => !document.querySelector("[data-testid=stale-banner]").classList.contains("show") &&
    document.querySelector("#version").textContent === String(v + 1), v0, "banner gone and version bumped");
  assert.equal(await formDisabled(bob), false);
  assert.equal(await alice.locator("#version").innerText(), String(v0 + 1));
  assert.equal(await shown(bob, "conflict"), false, "no unsaved edits, no conflict notice");
});

test("MUTATED under unsaved edits: a conflict notice with Reload / Keep my edits; a page without edits just shows the version", async () => {
  const order = uniqueOrder("conflict");
  const alice = await open("alice", order);
  const bob = await open("bob", order);
  await waitStrip(bob, ["alice"]);
  const v0 = Number(await bob.locator("#version").innerText());
  const key = `${TENANT}:order:${order}`;
  const notes = () => bob.locator("#f-notes").inputValue();
  await bob.locator("#f-notes").fill("Ship in two boxes.");
  await bob.locator("#f-notes").blur();
  await until(alice, () => !!document.querySelector("[data-user=bob] [data-testid=editing]"), null, "bob's editing badge");

  // alice's write lands under bob's edits
  await control("/lifecycle", { key, type: "MUTATING", busy_by: "alice", write_id: "w1" });
  await control("/lifecycle", { key, type: "MUTATED", write_id: "w1" });
  await until(bob, () => document.querySelector("[data-testid=conflict]").classList.contains("show"), null, "bob's conflict notice");
  const text = await bob.locator("[data-testid=conflict]").innerText();
  assert.match(text, new RegExp(`^Alice changed this order while you were editing \\(version ${v0} → ${v0 + 1}\\)`));
  assert.equal(await bob.getByRole("button", { name: "Reload" }).isVisible(), true);
  assert.equal(await bob.getByRole("button", { name: "Keep my edits" }).isVisible(), true);
  assert.equal(await notes(), "Ship in two boxes.", "the edits are still there");
  await until(alice, (v) => document.querySelector("#version").textContent === String(v), v0 + 1, "alice's version");
  assert.equal(await shown(alice, "conflict"), false, "alice had no unsaved edits: no notice");
  await shot(bob, "e2e-conflict");

  // Keep my edits: the notice goes, the edits and the editing badge stay
  await bob.getByRole("button", { name: "Keep my edits" }).click();
  assert.equal(await shown(bob, "conflict"), false);
  assert.equal(await notes(), "Ship in two boxes.");
  assert.equal(await bob.locator("#version").innerText(), String(v0 + 1));

  // a second write (by someone not on the page): the notice again, from the
  // version the kept edits stand on; Reload drops them
  await control("/lifecycle", { key, type: "MUTATING", busy_by: "carol", write_id: "w2" });
  await control("/lifecycle", { key, type: "MUTATED", write_id: "w2" });
  await until(bob, () => document.querySelector("[data-testid=conflict]").classList.contains("show"), null, "the second notice");
  assert.match(await bob.locator("[data-testid=conflict]").innerText(), new RegExp(`^carol changed .*\\(version ${v0 + 1} → ${v0 + 2}\\)`));
  await bob.getByRole("button", { name: "Reload" }).click();
  assert.equal(await shown(bob, "conflict"), false);
  assert.equal(await notes(), "Ship in one box.", "Reload puts the record's values back");
  await until(alice, () => !document.querySelector("[data-user=bob] [data-testid=editing]"), null, "bob's editing badge gone after Reload");
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
