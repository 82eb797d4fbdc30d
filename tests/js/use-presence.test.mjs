// use-presence.test.mjs - the React hook over a client with fakes, rendered
// by real React 18 (react-test-renderer; both from tests/e2e/node_modules,
// installed by scripts/setup.sh, React is not needed by the client itself):
// subscribe on mount, presence updates, locks, errors, connection state,
// unsubscribe on unmount. Every event that changes state is delivered
// inside act(), as React expects of tests.
import assert from "node:assert/strict";
import { createRequire, register } from "node:module";
import { test } from "node:test";

import { PresenceClient } from "../../gateway/web/presence-client.js";
import { FakeClock, FakeWindow, fakeWebSocketClass, flush } from "./fakes.mjs";

register("./react-loader.mjs", import.meta.url);
globalThis.IS_REACT_ACT_ENVIRONMENT = true;
const require = createRequire(new URL("../e2e/package.json", import.meta.url));
const React = require("react");
const { act, create } = require("react-test-renderer");
const { usePresence } = await import("../../gateway/web/use-presence.js");

/** Render hook() in a component; returns {result, renders, unmount}. */
function renderHook(hook) {
  const out = { result: null, renders: 0 };
  function Probe() {
    out.result = hook();
    out.renders++;
    return null;
  }
  let root;
  act(() => { root = create(React.createElement(Probe)); });
  out.unmount = () => act(() => root.unmount());
  return out;
}

test("usePresence: subscribes, follows PRESENCE, locks and errors, unsubscribes on unmount", async () => {
  const clock = new FakeClock();
  const WS = fakeWebSocketClass();
  const client = new PresenceClient({ url: "ws://gw/ws/presence", query: { user: "alice" }, WebSocket: WS,
    timers: clock.timersApi(), now: clock.now, window: new FakeWindow(), tabId: "t1" });
  await flush();
  const ws = WS.made[0];
  const h = renderHook(() => usePresence({ entity: "order", id: "42", client }));
  let r = h.result;
  assert.deepEqual([r.presence.users, r.presence.stale, r.presence.busyBy, r.presence.version, r.presence.connected],
    [[], false, null, 0, false]);
  assert.equal(r.error, null);

  act(() => { ws.open(); });
  const { request_id: subRid, ...sub } = ws.sent[0];
  assert.deepEqual(sub, { type: "SUB", entity: "order", id: "42", tab_id: "t1", mode: "view", status: "online" });
  assert.match(subRid, /^s\d+$/);
  assert.equal(h.result.presence.connected, true);
  act(() => ws.recv({ type: "PRESENCE", entity: "order", id: "42", users: ["alice", "bob"],
    viewers: [{ id: "alice", user_name: "Alice", tabs: 1, has_dirty_tab: false, mode: "view", status: "online" },
      { id: "bob", user_name: "Bob", tabs: 1, has_dirty_tab: true, mode: "edit", status: "online" }],
    locks: [{ field: "amount", user: "bob", user_name: "Bob", tab_id: "tb", token: 5, expires_at: 1 }],
    stale: true, busyBy: "erp", version: 4 }));
  r = h.result;
  assert.deepEqual(r.presence.users.map((u) => u.id), ["alice", "bob"]);
  assert.deepEqual(r.presence.others.map((u) => u.id), ["bob"]);
  assert.equal(r.presence.lockOf("amount").name, "Bob");
  assert.deepEqual([r.presence.stale, r.presence.busyBy, r.presence.version, r.presence.connected], [true, "erp", 4, true]);

  let p;
  act(() => { p = r.acquireLock("note"); });
  const lock = ws.sent.at(-1);
  assert.deepEqual([lock.type, lock.entity, lock.id, lock.field], ["LOCK", "order", "42", "note"]);
  act(() => ws.recv({ type: "LOCK_ACK", entity: "order", id: "42", field: "note", success: true,
    holder: { id: "alice", user_name: "Alice" }, token: 6, request_id: lock.request_id }));
  assert.equal((await p).granted, true);
  act(() => ws.recv({ type: "PRESENCE", entity: "order", id: "42", users: ["alice"], viewers: [],
    locks: [{ field: "note", user: "alice", user_name: "Alice", tab_id: "t1", token: 6, expires_at: 1 }],
    stale: false, busyBy: null, version: 4 }));
  assert.equal(h.result.presence.lockOf("note").mine, true);
  let q;
  act(() => { q = h.result.releaseLock("note"); });
  assert.equal(ws.sent.at(-1).type, "UNLOCK");
  act(() => { ws.recv({ type: "ERROR", code: "UNAVAILABLE", message: "Kafka is unreachable", request_id: ws.sent.at(-1).request_id }); });
  await assert.rejects(q, { code: "UNAVAILABLE" });
  assert.equal(h.result.error.code, "UNAVAILABLE");

  act(() => { ws.drop(); });
  assert.equal(h.result.presence.connected, false);
  clock.advance(1000);
  await flush();
  act(() => { WS.made[1].open(); });
  h.unmount();
  assert.deepEqual(WS.made[1].sent.at(-1), { type: "UNSUB", entity: "order", id: "42" });
  const before = h.renders;
  act(() => { WS.made[1].recv({ type: "ERROR", code: "RATE_LIMITED", message: "x", request_id: null }); });
  assert.equal(h.renders, before, "no listener left after unmount");
});
