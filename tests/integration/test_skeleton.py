#!/usr/bin/python3
"""Walking skeleton, end to end: two users (two real WebSocket clients) SUB
to one entity through the gateway; the records go through Kafka to the
processor, into Redis, and back out as PRESENCE pushes. Each user must see
both; when one disconnects without UNSUB, the other must see them leave.
Also checks the Redis view directly and that both daemons stop cleanly,
and that a token of over 2 KiB (an extra claim; the URI still within the
gateway's 4096-byte header space) is read whole and accepted."""
import hashlib
import hmac
import json
import subprocess
import time

import websockets

import pxtest


async def test(stack):
    tenant = pxtest.unique("t")
    order = pxtest.unique("o")
    stack.start_processor()
    stack.start_gateway()
    stack.wait_ready()

    alice = await websockets.connect(stack.ws_url(pxtest.token("alice", tenant, "Alice")))
    bob = await websockets.connect(stack.ws_url(pxtest.token("bob", tenant, "Bob")))
    for ws, mode in ((alice, "edit"), (bob, "view")):
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "mode": mode}))

    def both(m):
        return m.get("type") == "PRESENCE" and sorted(m.get("users", [])) == ["alice", "bob"]

    for ws in (alice, bob):
        m = await pxtest.recv_until(ws, both, what="PRESENCE naming alice and bob")
        assert m["entity"] == "order" and m["id"] == order, m
        viewers = {v["id"]: v for v in m["viewers"]}
        assert viewers["alice"]["user_name"] == "Alice", viewers
        assert viewers["alice"]["mode"] == "edit", viewers
        assert viewers["bob"]["mode"] == "view", viewers
        assert viewers["alice"]["tabs"] == 1 and viewers["bob"]["tabs"] == 1, viewers

    # The Redis view holds both tabs under the entity's hash tag.
    env = stack.env

    def get_view():
        out = subprocess.run(["redis-cli", "-p", env["REDIS_PORT"], "GET",
                              f"presence:{{{tenant}:order:{order}}}:view"],
                             capture_output=True, text=True, check=True).stdout.strip()
        return json.loads(out)
    tabs = get_view()["tabs"]
    assert sorted(t["user"] for t in tabs) == ["alice", "bob"], f"expected 2 tabs in Redis, got {tabs!r}"

    # A heartbeat that flips bob to dirty reaches alice as an update.
    await bob.send(json.dumps({"type": "HB", "dirty": True}))
    await pxtest.recv_until(
        alice, lambda m: m.get("type") == "PRESENCE" and any(
            v["id"] == "bob" and v["has_dirty_tab"] for v in m.get("viewers", [])),
        what="PRESENCE with bob dirty")

    # Tab ids come from clients: mallory claiming alice's tab id must neither
    # replace nor remove alice's tab.
    alice_tab = None
    for t in get_view()["tabs"]:
        if t["user"] == "alice":
            alice_tab = t["tab"]
    assert alice_tab, get_view()
    mallory = await websockets.connect(stack.ws_url(pxtest.token("mallory", tenant, "Mallory")))
    await mallory.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tab_id": alice_tab}))
    await mallory.send(json.dumps({"type": "UNSUB"}))
    await mallory.close()
    # A marker after mallory's records: once bob's status change shows, the
    # processor has applied everything before it.
    await bob.send(json.dumps({"type": "HB", "status": "away"}))
    m = await pxtest.recv_until(
        alice, lambda m: m.get("type") == "PRESENCE" and any(
            v["id"] == "bob" and v["status"] == "away" for v in m.get("viewers", [])),
        what="PRESENCE with bob away")
    assert sorted(m["users"]) == ["alice", "bob"], m

    # Bob's connection drops without UNSUB: the gateway publishes it for him.
    await bob.close()
    await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m.get("users") == ["alice"],
                            what="PRESENCE after bob left")

    # The processor's operations endpoint.
    status, body = stack.http("/readyz", stack.proc_port)
    assert status == 200 and body.startswith("ready"), (status, body)
    status, body = stack.http("/healthz", stack.proc_port)
    assert (status, body) == (200, "ok\n"), (status, body)
    status, body = stack.http("/metrics", stack.proc_port)
    applied = [l for l in body.splitlines()
               if l.startswith('presence_processor_records_total{topic="heartbeats"}')]
    assert status == 200 and applied and int(applied[0].split()[-1]) >= 4, body

    # A bad message gets an ERROR and the connection keeps working.
    await alice.send("{not json")
    err = await pxtest.recv_until(alice, lambda m: m.get("type") == "ERROR", what="ERROR")
    assert err["code"] == "BAD_JSON", err
    await alice.send(json.dumps({"type": "HB", "status": "away"}))
    await pxtest.recv_until(
        alice, lambda m: m.get("type") == "PRESENCE" and m["viewers"][0]["status"] == "away",
        what="PRESENCE with alice away")

    # Locks and the lifecycle flag come from the view (docs/redis-keys.md);
    # the gateway shows live ones only.
    now = int(time.time() * 1000)
    base = f"presence:{{{tenant}:order:{order}}}"

    def rcli(*args):
        subprocess.run(["redis-cli", "-p", env["REDIS_PORT"], *args], capture_output=True, text=True, check=True)

    v = get_view()
    v["locks"] = [
        {"field": "old", "user": "bob", "name": "Bob", "tab": "x", "token": 7, "deadline": now - 1000},
        {"field": "title", "user": "alice", "name": "Alice", "tab": alice_tab, "token": 42, "deadline": now + 60000}]
    v.update(stale=True, busyBy="import job", stale_until=now + 60000, version=5)
    rcli("SET", base + ":view", json.dumps(v))
    rcli("PUBLISH", f"presence:updates:{{{tenant}:order:{order}}}", "{}")
    m = await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m.get("locks"),
                                what="PRESENCE with a lock")
    assert [l["field"] for l in m["locks"]] == ["title"], m
    lock = m["locks"][0]
    assert (lock["user"], lock["user_name"], lock["tab_id"], lock["token"]) == ("alice", "Alice", alice_tab, 42), m
    assert m["stale"] is True and m["busyBy"] == "import job" and m["version"] == 5, m
    await alice.close()

    # A 3 KiB token (an extra claim the gateway ignores) is read whole: accepted.
    head = pxtest.b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = pxtest.b64url(json.dumps({"sub": "zoe", "tenant": tenant, "exp": int(time.time()) + 600,
                                     "pad": "z" * 2200}).encode())
    sig = pxtest.b64url(hmac.new(pxtest.SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest())
    big = f"{head}.{body}.{sig}"
    assert 2900 < len(big) < 3300, len(big)
    zoe = await websockets.connect(stack.ws_url(big))
    await zoe.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    await pxtest.recv_until(zoe, lambda m: m.get("type") == "PRESENCE" and "zoe" in m["users"],
                            what="PRESENCE for the holder of a 3 KiB token")
    await zoe.close()

    # No token: refused with an ERROR UNAUTHORIZED and close code 4401.
    ws = await websockets.connect(f"ws://127.0.0.1:{stack.http_port}/ws/presence")
    err = json.loads(await ws.recv())
    assert err["type"] == "ERROR" and err["code"] == "UNAUTHORIZED", err
    try:
        await ws.recv()
        raise AssertionError("connection without token stayed open")
    except websockets.ConnectionClosed as e:
        assert e.code == 4401, e.code


if __name__ == "__main__":
    pxtest.run(test, "test_skeleton")
