// presence-client.test.mjs - the browser client's logic under node's test
// runner, with a fake clock, fake WebSocket and fake window: the backoff
// schedule (jitter bounds, cap, max attempts, reset on success),
// re-subscription, heartbeats, the away timer, pagehide, locks as promises,
// ERROR events and tokens. No browser, no server.
import assert from "node:assert/strict";
import { test } from "node:test";

import { PresenceClient, backoffDelay, decodeToken } from "../../gateway/web/presence-client.js";
import { FakeClock, FakeWindow, fakeWebSocketClass, flush } from "./fakes.mjs";

function jwt(claims) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b({ alg: "HS256", typ: "JWT" })}.${b(claims)}.sig`;
}
const TOKEN = jwt({ sub: "alice", tenant: "acme", name: "Alice Ä", exp: 9999999999 });

async function setup(opts = {}) {
  const clock = new FakeClock();
  const WS = fakeWebSocketClass();
  const win = new FakeWindow();
  const events = { connection: [], presence: [], error: [], status: [], lock: [] };
  const c = new PresenceClient({ url: "ws://gw.test/ws/presence", token: TOKEN, WebSocket: WS, timers: clock.timersApi(),
    now: clock.now, random: () => 0, window: win, tabId: "tab-1", ...opts });
  for (const k of Object.keys(events)) c.on(k, (e) => events[k].push(e));
  await flush();
  return { c, clock, WS, win, events, ws: () => WS.made[WS.made.length - 1] };
}

const sentOf = (ws, type) => ws.sent.filter((m) => m.type === type)
  .map((m) => (m.type === "SUB" ? (({ request_id, ...rest }) => rest)(m) : m));

test("backoffDelay: 1 s doubling to a 30 s cap, jitter takes at most half off", () => {
  const nominal = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  nominal.forEach((n, i) => {
    assert.equal(backoffDelay(i, { random: () => 0 }), n, `attempt ${i} without jitter`);
    const low = backoffDelay(i, { random: () => 0.999999 });
    assert.ok(low >= n / 2 && low <= n, `attempt ${i}: ${low} within [${n / 2}, ${n}]`);
  });
  for (let i = 0; i < 2000; i++) {
    const a = i % 40, d = backoffDelay(a);
    const n = Math.min(30000, 1000 * 2 ** a);
    assert.ok(d >= n / 2 && d <= n && d <= 30000, `attempt ${a}: ${d}`);
  }
  assert.equal(backoffDelay(1e6, { random: () => 0 }), 30000, "a huge attempt count stays at the cap");
  assert.equal(backoffDelay(2, { baseMs: 100, maxMs: 250, random: () => 0 }), 250);
});

test("decodeToken reads the claims (UTF-8 names too) and refuses non-JWTs", () => {
  assert.deepEqual(decodeToken(TOKEN), { sub: "alice", tenant: "acme", name: "Alice Ä", exp: 9999999999 });
  assert.equal(decodeToken("nope"), null);
  assert.equal(decodeToken(undefined), null);
});

test("connects with access_token, subscribes with its tab id, knows its user", async () => {
  const { c, ws, events } = await setup();
  assert.match(ws().url, /^ws:\/\/gw\.test\/ws\/presence\?access_token=/);
  assert.equal(new URL(ws().url).searchParams.get("access_token"), TOKEN);
  c.subscribe("order", "42");
  ws().open();
  assert.deepEqual(sentOf(ws(), "SUB"), [{ type: "SUB", entity: "order", id: "42", tab_id: "tab-1", mode: "view", status: "online" }]);
  assert.deepEqual(c.user, { id: "alice", name: "Alice Ä", tenant: "acme" });
  assert.deepEqual(events.connection.map((e) => e.state), ["open"]);
  assert.equal(c.connected, true);
});

test("reconnects 1 s, 2 s, 4 s ... capped at 30 s, resets after a success, re-subscribes with the same tab", async () => {
  const { c, clock, WS, ws, events } = await setup({ awayAfterMs: 0 });
  c.subscribe("order", "42", { mode: "edit" });
  ws().open();
  const delays = [];
  for (let i = 0; i < 8; i++) {
    ws().drop();
    const e = events.connection.at(-1);
    assert.equal(e.state, "reconnecting");
    delays.push(e.delayMs);
    const before = WS.made.length;
    clock.advance(e.delayMs - 1);
    await flush();
    assert.equal(WS.made.length, before, "not before the delay");
    clock.advance(1);
    await flush();
    assert.equal(WS.made.length, before + 1, "a new socket once the delay passed");
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000],
    "the first drop follows an open connection (reset), then doubling to the cap");
  ws().open(); // success resets the schedule
  assert.deepEqual(sentOf(ws(), "SUB"), [{ type: "SUB", entity: "order", id: "42", tab_id: "tab-1", mode: "edit", status: "online" }]);
  ws().drop();
  assert.equal(events.connection.at(-1).delayMs, 1000);
});

test("gives up after reconnect.maxAttempts consecutive failures", async () => {
  const { c, clock, WS, ws, events } = await setup({ reconnect: { maxAttempts: 3 } });
  for (let i = 0; i < 3; i++) {
    ws().drop();
    clock.advance(events.connection.at(-1).delayMs);
    await flush();
  }
  assert.equal(WS.made.length, 4);
  ws().drop();
  assert.equal(events.connection.at(-1).state, "failed");
  assert.equal(events.error.at(-1).code, "RECONNECT_FAILED");
  clock.advance(120000);
  await flush();
  assert.equal(WS.made.length, 4, "no attempt after giving up");
  c.connect(); // the app tries again: a fresh schedule
  await flush();
  assert.equal(WS.made.length, 5);
  ws().drop();
  assert.equal(events.connection.at(-1).state, "reconnecting");
  assert.equal(events.connection.at(-1).delayMs, 1000);
});

test("jitter is applied to reconnect delays within bounds", async () => {
  let r = 0.37;
  const { ws, events } = await setup({ random: () => r });
  ws().drop();
  assert.equal(events.connection.at(-1).delayMs, Math.round(1000 * (1 - 0.5 * 0.37)));
  r = 0.99;
  assert.ok(backoffDelay(5, { random: () => r }) >= 15000);
});

test("heartbeats every 30 s to every record while open, stops when closed", async () => {
  const { c, clock, ws } = await setup();
  c.subscribe("order", "1");
  c.subscribe("order", "2");
  ws().open();
  clock.advance(29999);
  assert.equal(sentOf(ws(), "HB").length, 0);
  clock.advance(1);
  assert.deepEqual(sentOf(ws(), "HB"), [{ type: "HB", entity: "order", id: "1", status: "online" },
    { type: "HB", entity: "order", id: "2", status: "online" }]);
  clock.advance(60000);
  assert.equal(sentOf(ws(), "HB").length, 6);
  const old = ws();
  old.drop();
  clock.advance(60000);
  assert.equal(sentOf(old, "HB").length, 6, "no heartbeat on a closed socket");
});

test("away after 2 minutes without activity, online again on activity", async () => {
  const { c, clock, win, ws, events } = await setup();
  c.subscribe("order", "42");
  ws().open();
  clock.advance(100000);
  win.dispatch("pointermove"); // activity at 100 s: away at 220 s, not 120 s
  clock.advance(119999);
  assert.equal(c.status, "online");
  assert.deepEqual(events.status, []);
  clock.advance(1);
  assert.equal(c.status, "away");
  assert.deepEqual(events.status, ["away"]);
  assert.deepEqual(ws().sent.filter((m) => m.type === "HB" && m.status === "away").at(-1),
    { type: "HB", entity: "order", id: "42", status: "away" });
  win.dispatch("keydown");
  assert.equal(c.status, "online");
  assert.deepEqual(ws().sent.at(-1), { type: "HB", entity: "order", id: "42", status: "online" });
  clock.advance(120000);
  assert.equal(c.status, "away", "away again after another 2 minutes");
  // a reconnect while away re-subscribes as away
  ws().drop();
  clock.advance(events.connection.at(-1).delayMs);
  await flush();
  ws().open();
  assert.equal(sentOf(ws(), "SUB")[0].status, "away");
});

test("pagehide sends UNSUB for every record and closes without reconnecting; pageshow from cache resumes", async () => {
  const { c, clock, WS, win, ws, events } = await setup();
  c.subscribe("order", "1");
  c.subscribe("invoice", "9");
  ws().open();
  const sock = ws();
  win.dispatch("pagehide");
  assert.deepEqual(sentOf(sock, "UNSUB"), [{ type: "UNSUB", entity: "order", id: "1" }, { type: "UNSUB", entity: "invoice", id: "9" }]);
  assert.equal(sock.readyState, 3);
  assert.equal(events.connection.at(-1).state, "closed");
  clock.advance(300000);
  await flush();
  assert.equal(WS.made.length, 1, "no reconnect after pagehide");
  win.dispatch("pageshow", { persisted: true });
  await flush();
  assert.equal(WS.made.length, 2);
  ws().open();
  assert.equal(sentOf(ws(), "SUB").length, 2);
  c.close();
  assert.equal(win.count(), 0, "close() removes its window listeners");
});

test("acquireLock resolves with the LOCK_ACK (granted or denied), rejects on ERROR, timeout or disconnect", async () => {
  const { c, clock, ws, events } = await setup({ lockTimeoutMs: 5000 });
  c.subscribe("order", "42");
  await assert.rejects(c.acquireLock("amount"), { code: "DISCONNECTED" }, "not connected yet");
  ws().open();
  const p1 = c.acquireLock("amount");
  const lock = sentOf(ws(), "LOCK").at(-1);
  assert.deepEqual({ ...lock, request_id: undefined }, { type: "LOCK", entity: "order", id: "42", field: "amount", request_id: undefined });
  ws().recv({ type: "LOCK_ACK", entity: "order", id: "42", field: "amount", success: true,
    holder: { id: "alice", user_name: "Alice" }, token: 17, request_id: lock.request_id });
  assert.deepEqual(await p1, { entity: "order", id: "42", field: "amount", granted: true, holder: { id: "alice", name: "Alice" }, token: 17 });
  assert.equal(events.lock.length, 1);

  const p2 = c.acquireLock("note");
  ws().recv({ type: "LOCK_ACK", entity: "order", id: "42", field: "note", success: false,
    holder: { id: "bob", user_name: null }, token: null, request_id: sentOf(ws(), "LOCK").at(-1).request_id });
  const r2 = await p2;
  assert.equal(r2.granted, false);
  assert.deepEqual(r2.holder, { id: "bob", name: "bob" });

  const p3 = c.acquireLock("x");
  ws().recv({ type: "ERROR", code: "UNAVAILABLE", message: "Kafka is unreachable", request_id: sentOf(ws(), "LOCK").at(-1).request_id });
  await assert.rejects(p3, { code: "UNAVAILABLE" });
  assert.equal(events.error.at(-1).code, "UNAVAILABLE");

  const p4 = c.acquireLock("y");
  clock.advance(4999);
  let settled = false;
  p4.catch(() => {}).finally(() => { settled = true; });
  await flush();
  assert.equal(settled, false);
  clock.advance(1);
  await assert.rejects(p4, { code: "TIMEOUT" });
  assert.equal(c.pending.size, 0);

  const p5 = c.acquireLock("z");
  ws().drop();
  await assert.rejects(p5, { code: "DISCONNECTED" });
});

test("acquireLock needs a target when several records are watched", async () => {
  const { c, ws } = await setup();
  c.subscribe("order", "1");
  c.subscribe("order", "2");
  ws().open();
  await assert.rejects(c.acquireLock("amount"), /entity, id/);
  const p = c.acquireLock("amount", { entity: "order", id: "2" });
  assert.equal(sentOf(ws(), "LOCK").at(-1).id, "2");
  ws().recv({ type: "LOCK_ACK", entity: "order", id: "2", field: "amount", success: true, holder: null, token: 1,
    request_id: sentOf(ws(), "LOCK").at(-1).request_id });
  assert.equal((await p).granted, true);
});

const presence = (over = {}) => ({ type: "PRESENCE", entity: "order", id: "42", users: ["alice", "bob"],
  viewers: [{ id: "alice", user_name: "Alice", tabs: 1, has_dirty_tab: false, mode: "edit", status: "online" },
    { id: "bob", user_name: "Bob", tabs: 2, has_dirty_tab: true, mode: "view", status: "away" }],
  locks: [{ field: "amount", user: "alice", user_name: "Alice", tab_id: "tab-1", token: 17, expires_at: 1 },
    { field: "note", user: "bob", user_name: "Bob", tab_id: "tb", token: 18, expires_at: 1 }],
  stale: true, busyBy: "erp", version: 3, ...over });

test("PRESENCE becomes a view: users with self/others, locks with mine, stale, busyBy, version", async () => {
  const { c, ws, events } = await setup();
  c.subscribe("order", "42");
  ws().open();
  ws().recv(presence());
  const p = events.presence.at(-1);
  assert.deepEqual(p.users.map((u) => [u.id, u.name, u.self]), [["alice", "Alice", true], ["bob", "Bob", false]]);
  assert.deepEqual(p.others.map((u) => u.id), ["bob"]);
  assert.equal(p.lockOf("amount").mine, true);
  assert.equal(p.lockOf("note").mine, false);
  assert.equal(p.lockOf("note").name, "Bob");
  assert.equal(p.lockOf("free"), null);
  assert.deepEqual([p.stale, p.busyBy, p.version, p.connected], [true, "erp", 3, true]);
  assert.equal(c.getPresence("order", "42"), p);
  ws().recv(presence({ id: "other" }));
  assert.equal(events.presence.length, 1, "a record not subscribed is ignored");
  ws().recv("{not json");
  assert.equal(events.error.length, 0);
  ws().drop();
  assert.equal(events.presence.at(-1).connected, false, "a drop marks the view disconnected");
});

test("releaseLock resolves once a PRESENCE shows the lock gone", async () => {
  const { c, ws } = await setup();
  c.subscribe("order", "42");
  ws().open();
  ws().recv(presence());
  let done = false;
  const p = c.releaseLock("amount").then((r) => { done = true; return r; });
  const u = sentOf(ws(), "UNLOCK").at(-1);
  assert.equal(u.field, "amount");
  ws().recv(presence()); // still held
  await flush();
  assert.equal(done, false);
  ws().recv(presence({ locks: [] }));
  assert.deepEqual(await p, { released: true, field: "amount" });
});

test("ERROR messages become error events (RATE_LIMITED, UNAVAILABLE)", async () => {
  const { c, ws, events } = await setup();
  c.subscribe("order", "42");
  ws().open();
  ws().recv({ type: "ERROR", code: "RATE_LIMITED", message: "too many", request_id: null });
  ws().recv({ type: "ERROR", code: "UNAVAILABLE", message: "Kafka is unreachable", request_id: "h1" });
  assert.deepEqual(events.error, [{ code: "RATE_LIMITED", message: "too many", requestId: null },
    { code: "UNAVAILABLE", message: "Kafka is unreachable", requestId: "h1" }]);
});

test("update sends only what changed as an HB and keeps it for re-subscription", async () => {
  const { c, ws } = await setup();
  c.subscribe("order", "42");
  ws().open();
  c.update("order", "42", { mode: "edit", dirty: true, field: "amount" });
  c.update("order", "42", { dirty: true });
  assert.deepEqual(sentOf(ws(), "HB"), [{ type: "HB", entity: "order", id: "42", mode: "edit", dirty: true, field: "amount" }]);
  c.unsubscribe("order", "42");
  assert.deepEqual(sentOf(ws(), "UNSUB"), [{ type: "UNSUB", entity: "order", id: "42" }]);
});

test("a refused token (4401): a fixed token stops, a token function is asked again", async () => {
  const fixed = await setup();
  fixed.ws().open();
  fixed.ws().drop(4401);
  assert.equal(fixed.events.connection.at(-1).state, "failed");
  fixed.clock.advance(60000);
  await flush();
  assert.equal(fixed.WS.made.length, 1);

  let calls = 0;
  const fn = await setup({ token: async () => jwt({ sub: `u${++calls}`, tenant: "t", exp: 1 }) });
  assert.equal(calls, 1);
  fn.ws().open();
  fn.ws().drop(4401);
  assert.equal(fn.events.connection.at(-1).state, "reconnecting");
  fn.clock.advance(fn.events.connection.at(-1).delayMs);
  await flush();
  assert.equal(calls, 2);
  assert.equal(fn.c.user.id, "u2");
  fn.ws().open(); // the gateway completes the handshake, then refuses
  fn.ws().drop(4401);
  assert.equal(fn.events.connection.at(-1).delayMs, 2000, "a refused connection is not a success: no reset");
  fn.clock.advance(2000);
  await flush();
  fn.ws().open();
  fn.ws().drop(1013); // OVERLOADED
  assert.equal(fn.events.connection.at(-1).delayMs, 4000, "nor is one closed as overloaded");
  fn.clock.advance(4000);
  await flush();
  fn.ws().open();
  fn.ws().drop(1006);
  assert.equal(fn.events.connection.at(-1).delayMs, 1000, "a connection that opened and then dropped resets");

  const failing = await setup({ token: async () => { throw new Error("403 from the app"); } });
  assert.equal(failing.events.error[0].code, "TOKEN");
  assert.equal(failing.events.connection.at(-1).state, "reconnecting");
});

test("a SUB refused with UNAVAILABLE is sent again with backoff until a PRESENCE confirms it", async () => {
  const { c, clock, ws, events } = await setup({ awayAfterMs: 0 });
  c.subscribe("order", "42");
  ws().open();
  const refuse = () => ws().recv({ type: "ERROR", code: "UNAVAILABLE", message: "Kafka is unreachable; retry later",
    request_id: ws().sent.filter((m) => m.type === "SUB").at(-1).request_id });
  refuse();
  assert.equal(events.error.at(-1).code, "UNAVAILABLE");
  clock.advance(999);
  assert.equal(sentOf(ws(), "SUB").length, 1);
  clock.advance(1);
  assert.equal(sentOf(ws(), "SUB").length, 2, "sent again after 1 s");
  refuse();
  clock.advance(2000);
  assert.equal(sentOf(ws(), "SUB").length, 3, "then after 2 s");
  ws().recv(presence());
  refuse(); // a late duplicate refusal after confirmation restarts at 1 s
  clock.advance(1000);
  assert.equal(sentOf(ws(), "SUB").length, 4);
  ws().recv({ type: "ERROR", code: "BAD_FIELD", message: "x", request_id: ws().sent.filter((m) => m.type === "SUB").at(-1).request_id });
  clock.advance(60000);
  assert.equal(sentOf(ws(), "SUB").length, 4, "a refusal that will not pass is not retried");
  c.unsubscribe("order", "42");
});

test("a LOCK answered NOT_SUBSCRIBED (the gateway lost the SUB) re-subscribes", async () => {
  const { c, clock, ws } = await setup({ awayAfterMs: 0 });
  c.subscribe("order", "42");
  ws().open();
  const p = c.acquireLock("amount");
  ws().recv({ type: "ERROR", code: "NOT_SUBSCRIBED", message: "LOCK/UNLOCK for an entity not subscribed",
    request_id: sentOf(ws(), "LOCK").at(-1).request_id });
  await assert.rejects(p, { code: "NOT_SUBSCRIBED" });
  clock.advance(1000);
  assert.equal(sentOf(ws(), "SUB").length, 2);
});

test("releaseLock of a lock this tab does not hold resolves at once (the UNLOCK is still sent)", async () => {
  const { c, ws } = await setup();
  c.subscribe("order", "42");
  ws().open();
  ws().recv(presence()); // amount is mine, note is bob's
  assert.deepEqual(await c.releaseLock("note"), { released: true, field: "note" });
  assert.equal(sentOf(ws(), "UNLOCK").at(-1).field, "note");
  c.acquireLock("free");
  let done = false;
  c.releaseLock("free").then(() => { done = true; });
  await flush();
  assert.equal(done, false, "a LOCK of the field is in flight: wait for the PRESENCE");
});
