#!/usr/bin/python3
"""The gateway's REST routes and its security, end to end (real gateway,
processor, Kafka, Redis):

- POST heartbeat, GET viewers (without the caller), GET full state, DELETE
  unregister: status and body checked field by field;
- one error shape {"success":false,"error":{"code","message"}} with its
  HTTP status: 400 BAD_JSON/BAD_FIELD, 401 (no token, expired, forged),
  403 (X-SX-Tenant of another tenant), 404, 405, 413, 429 (per user);
- WebSocket: no token, expired and forged tokens refused with 4401; a
  message naming another tenant refused; two tenants with the same entity
  id see nothing of each other; Origin allow-list (403 before the
  upgrade); permessage-deflate negotiated; a peer that does not answer
  PINGs is dropped, one that does stays.
"""
import asyncio
import json
import socket
import time
import urllib.request

import websockets

import pxtest


def rest(stack, method, path, tok=None, body=None, headers=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(f"http://127.0.0.1:{stack.http_port}{path}", data=data, method=method)
    if tok:
        req.add_header("Authorization", f"Bearer {tok}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def is_error(resp, status, code):
    st, body = resp
    assert st == status, (status, code, resp)
    assert set(body) == {"success", "error"} and body["success"] is False, resp
    assert set(body["error"]) == {"code", "message"} and body["error"]["code"] == code, resp
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], resp


async def refused(url, what, **kw):
    ws = await websockets.connect(url, **kw)
    err = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert err["type"] == "ERROR" and err["code"] == "UNAUTHORIZED", (what, err)
    try:
        await asyncio.wait_for(ws.recv(), 10)
        raise AssertionError(f"{what}: connection stayed open")
    except websockets.ConnectionClosed as e:
        assert e.code == 4401, (what, e.code)


def poll(fn, pred, what, timeout=30):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = fn()
        if pred(last):
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {last}")


async def test(stack):
    tenant = pxtest.unique("t")
    other = pxtest.unique("u")
    order = pxtest.unique("o")
    stack.start_processor()
    stack.start_gateway("--set", "limits.rest_requests_per_minute=60", "--set", "limits.idle_ping_s=1",
                        "--set", "http.allowed_origins=https://app.example, https://admin.example")
    stack.wait_ready()
    alice = pxtest.token("alice", tenant, "Alice")
    bob = pxtest.token("bob", tenant, "Bob")
    base = f"/api/v1/presence/order/{order}"

    # --- the four routes -------------------------------------------------
    r = rest(stack, "POST", base + "/heartbeat", alice, {"tab_id": "a1", "mode": "edit", "dirty": True})
    assert r == (200, {"success": True, "data": {"tab_id": "a1", "user_id": "alice"}}), r
    r = rest(stack, "POST", base + "/heartbeat", bob, {"tab_id": "b1"})
    assert r == (200, {"success": True, "data": {"tab_id": "b1", "user_id": "bob"}}), r

    r = poll(lambda: rest(stack, "GET", base + "/viewers", bob),
             lambda r: r[0] == 200 and r[1]["data"]["viewers"], "alice among bob's viewers")
    assert r[1] == {"success": True, "data": {
        "viewers": [{"id": "alice", "user_name": "Alice", "tabs": 1, "has_dirty_tab": True, "mode": "edit"}],
        "current_user_id": "bob"}}, r
    r = poll(lambda: rest(stack, "GET", base + "/viewers", alice),
             lambda r: r[0] == 200 and r[1]["data"]["viewers"], "bob among alice's viewers")
    assert r[1]["data"] == {"viewers": [{"id": "bob", "user_name": "Bob", "tabs": 1, "has_dirty_tab": False,
                                         "mode": "view"}], "current_user_id": "alice"}, r

    st, body = rest(stack, "GET", base, alice)
    assert st == 200 and body["success"] is True, (st, body)
    d = body["data"]
    assert d["type"] == "PRESENCE" and d["entity"] == "order" and d["id"] == order, d
    assert sorted(d["users"]) == ["alice", "bob"] and d["locks"] == [] and d["stale"] is False, d
    assert d["busyBy"] is None and d["version"] == 0, d
    v = {x["id"]: x for x in d["viewers"]}
    assert v["alice"] == {"id": "alice", "user_name": "Alice", "tabs": 1, "has_dirty_tab": True,
                          "mode": "edit", "status": "online"}, d

    r = rest(stack, "DELETE", base + "/unregister", alice, {"tab_id": "a1"})
    assert r == (200, {"success": True, "data": {"tab_id": "a1", "user_id": "alice"}}), r
    poll(lambda: rest(stack, "GET", base + "/viewers", bob),
         lambda r: r[0] == 200 and r[1]["data"]["viewers"] == [], "alice gone from bob's viewers")
    # another user's DELETE of bob's tab id changes nothing (tabs belong to their user)
    assert rest(stack, "DELETE", base + "/unregister", alice, {"tab_id": "b1"})[0] == 200
    assert rest(stack, "POST", base + "/heartbeat", alice, {"tab_id": "a2"})[0] == 200
    r = poll(lambda: rest(stack, "GET", base + "/viewers", alice),
             lambda r: r[0] == 200 and r[1]["data"]["viewers"], "bob still there")
    assert [x["id"] for x in r[1]["data"]["viewers"]] == ["bob"], r

    # --- errors -------------------------------------------------------------
    is_error(rest(stack, "GET", base + "/viewers"), 401, "UNAUTHORIZED")
    is_error(rest(stack, "GET", base + "/viewers", pxtest.token("alice", tenant, exp_in=-10)), 401, "UNAUTHORIZED")
    is_error(rest(stack, "GET", base + "/viewers", pxtest.token("alice", tenant, secret="wrong")), 401,
             "UNAUTHORIZED")
    is_error(rest(stack, "GET", base + "/viewers", "not.a.jwt"), 401, "UNAUTHORIZED")
    is_error(rest(stack, "GET", base + "/viewers", alice, headers={"X-SX-Tenant": other}), 403, "FORBIDDEN")
    assert rest(stack, "GET", base + "/viewers", alice, headers={"X-SX-Tenant": tenant})[0] == 200
    is_error(rest(stack, "POST", base + "/heartbeat", alice, raw=b"{nope"), 400, "BAD_JSON")
    is_error(rest(stack, "POST", base + "/heartbeat", alice, {"mode": "edit"}), 400, "BAD_FIELD")
    is_error(rest(stack, "POST", base + "/heartbeat", alice, {"tab_id": "a b"}), 400, "BAD_FIELD")
    is_error(rest(stack, "POST", base + "/heartbeat", alice, {"tab_id": "a1", "mode": "fly"}), 400, "BAD_FIELD")
    is_error(rest(stack, "POST", base + "/heartbeat", alice, {"tab_id": "a1", "dirty": "yes"}), 400, "BAD_FIELD")
    is_error(rest(stack, "POST", base + "/heartbeat", alice, raw=b"{\"tab_id\":\"" + b"x" * 5000 + b"\"}"),
             413, "TOO_LARGE")
    is_error(rest(stack, "GET", "/api/v1/presence/order/bad%20id/viewers", alice), 400, "BAD_FIELD")
    is_error(rest(stack, "GET", base + "/nope", alice), 404, "NOT_FOUND")
    is_error(rest(stack, "GET", "/api/v2/x", alice), 404, "NOT_FOUND")
    is_error(rest(stack, "GET", "/nowhere"), 404, "NOT_FOUND")
    is_error(rest(stack, "GET", base + "/heartbeat", alice), 405, "METHOD_NOT_ALLOWED")
    is_error(rest(stack, "POST", base + "/viewers", alice, {}), 405, "METHOD_NOT_ALLOWED")

    # rate limit per user: carol's 61st request in the minute is refused, bob is not affected
    carol = pxtest.token("carol", tenant, "Carol")
    codes = [rest(stack, "GET", base, carol)[0] for _ in range(60)]
    assert codes == [200] * 60, codes
    is_error(rest(stack, "GET", base, carol), 429, "RATE_LIMITED")
    assert rest(stack, "GET", base, bob)[0] == 200

    # --- WebSocket security ---------------------------------------------------
    url = f"ws://127.0.0.1:{stack.http_port}/ws/presence"
    await refused(url, "no token")
    await refused(url + "?access_token=" + pxtest.token("alice", tenant, exp_in=-10), "expired token")
    await refused(url + "?access_token=" + pxtest.token("alice", tenant, secret="wrong"), "forged token")
    await refused(url + "?access_token=garbage", "garbage token")

    # Origin allow-list: refused before the upgrade; allowed ones and none pass.
    # (raw socket: lws answers the refused upgrade as HTTP/1.0, which the
    # websockets client will not parse)
    def upgrade(origin):
        with socket.create_connection(("127.0.0.1", stack.http_port), timeout=10) as s:
            s.sendall((f"GET /ws/presence?access_token={alice} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                       f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: presence\r\n"
                       f"Origin: {origin}\r\n\r\n").encode())
            return s.recv(200).split(b"\r\n")[0].decode()
    line = upgrade("https://evil.example")
    assert line.split()[1] == "403", line
    line = upgrade("https://app.example")
    assert line.split()[1] == "101", line
    ws = await websockets.connect(stack.ws_url(alice), origin="https://admin.example")
    # permessage-deflate was offered by the client and accepted by the gateway
    assert [e.name for e in ws.extensions] == ["permessage-deflate"], ws.extensions
    await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tenant": other, "request_id": "x"}))
    e = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert e == {"type": "ERROR", "code": "FORBIDDEN", "message": e["message"], "request_id": "x"}, e

    # Tenant isolation: mallory of another tenant watches the same entity id
    # and sees only herself, while alice's tenant has alice and bob.
    mallory = await websockets.connect(stack.ws_url(pxtest.token("mallory", other, "Mallory")))
    await mallory.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    m = await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and "alice" in m["users"],
                                what="alice's PRESENCE")
    assert "mallory" not in m["users"], m
    m = await pxtest.recv_until(mallory, lambda m: m.get("type") == "PRESENCE" and m["users"] == ["mallory"],
                                what="mallory alone")
    assert m["locks"] == [] and m["version"] == 0, m
    status, body = rest(stack, "GET", base + "/viewers", pxtest.token("mallory", other))
    assert status == 200 and body["data"]["viewers"] == [], body
    await mallory.close()

    # Idle policy (limits.idle_ping_s=1): a peer that never answers the
    # gateway's PINGs is dropped after ~2 s of silence; one that answers
    # (websockets does by itself) stays.
    def silent_peer():
        """Handshake, then read without ever answering; (bytes, eof, seconds)."""
        silent = socket.create_connection(("127.0.0.1", stack.http_port), timeout=15)
        silent.sendall((f"GET /ws/presence?access_token={alice} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        f"Sec-WebSocket-Version: 13\r\n\r\n").encode())
        t0, got, eof = time.monotonic(), b"", False
        while time.monotonic() - t0 < 15:
            chunk = silent.recv(4096)
            if not chunk:
                eof = True
                break
            got += chunk
        silent.close()
        return got, eof, time.monotonic() - t0
    # in a thread: the event loop must stay free to answer ws's PINGs
    got, eof, took = await asyncio.to_thread(silent_peer)
    assert got.startswith(b"HTTP/1.1 101") and eof and 1.5 < took < 10, (got[:40], eof, took)
    assert b"\x89\x02px" in got, got  # it was PINGed (payload "px") before being dropped
    await asyncio.sleep(3)
    await ws.send(json.dumps({"type": "HB", "dirty": True}))
    m = await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and any(
        v["id"] == "alice" and v["has_dirty_tab"] for v in m["viewers"]), what="alice still served after idling")
    await ws.close()


if __name__ == "__main__":
    pxtest.run(test, "test_gateway_rest")
