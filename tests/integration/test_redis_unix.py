#!/usr/bin/python3
"""redis.host as the path of a Unix socket (core/px_redis_addr.h), against a
real Redis that has no TCP port at all (port 0, the socket only), so every
read and write below can only have gone through the socket:

- bad settings are refused at start-up with the reason, exit 2, by the
  gateway, the processor and presencectl alike: an empty host, a socket
  path longer than a socket address holds (108 bytes and more);
- a socket path where no server listens: the gateway starts, says
  not-ready (redis=down) on /readyz and logs the failed connect;
- the processor and the gateway on the socket: two users see each other,
  a LOCK is granted with a token and the other user sees its holder; the
  view in Redis (read with redis-cli over the socket) holds both tabs and
  the lock; REST GET .../viewers answers from it; presencectl verify over
  the socket finds Redis EQUAL to the log.
"""
import json
import os
import subprocess
import time

import websockets

import pxtest
from test_gateway_rest import rest


def refused(argv, why):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and why in r.stderr, (argv[0], r.returncode, r.stderr[-500:])


async def test(stack):
    tenant = pxtest.unique("t")
    order = pxtest.unique("o")
    b = stack.build
    gw, pr, ctl = (os.path.join(b, "gateway", "presence-gateway"), os.path.join(b, "processor", "presence-processor"),
                   os.path.join(b, "tools", "presencectl"))

    # 1. bad settings: refused before anything starts
    long_path = "/tmp/" + "s" * 103  # 108 bytes: one more than sun_path holds with its NUL
    for argv in ([gw], [pr], [ctl, "verify"]):
        refused(argv + ["--set", f"redis.host={long_path}"], "a Unix socket path is at most 107 bytes, not 108")
        refused(argv + ["--set", "redis.host="], "redis.host is empty")

    # 2. nobody listens on the socket: not ready, and said in the log
    redis = pxtest.Redis(stack.logdir, unix=True)
    assert redis.port is None and redis.socket
    stack.env["REDIS_HOST"] = redis.socket + ".missing"
    g = stack.start_gateway()
    deadline, last = time.time() + 20, None
    while time.time() < deadline:
        try:
            last = stack.http("/readyz")
            if last[0] == 503 and "redis=down" in last[1]:
                break
        except OSError as e:
            last = e
        time.sleep(0.2)
    assert last and last[0] == 503 and "redis=down" in last[1], last
    assert g.stop() == 0
    stack.daemons.remove(g)
    with open(g.log_path) as f:
        log = f.read()
    assert "redis connect failed" in log, log[-1000:]

    # 3. the processor and the gateway on the socket
    stack.env["REDIS_HOST"] = redis.socket
    stack.start_processor()
    stack.start_gateway()
    stack.wait_ready()
    assert stack.http("/readyz", stack.proc_port)[0] == 200

    alice = await websockets.connect(stack.ws_url(pxtest.token("alice", tenant, "Alice")))
    bob_tok = pxtest.token("bob", tenant, "Bob")
    bob = await websockets.connect(stack.ws_url(bob_tok))
    for ws in (alice, bob):
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order}))
    for ws in (alice, bob):
        await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and sorted(m["users"]) == ["alice", "bob"],
                                what="PRESENCE naming alice and bob")

    await alice.send(json.dumps({"type": "LOCK", "field": "notes", "request_id": "u1"}))
    ack = await pxtest.recv_until(alice, lambda m: m.get("type") == "LOCK_ACK", what="LOCK_ACK")
    assert ack["success"] is True and ack["field"] == "notes" and ack["request_id"] == "u1", ack
    assert ack["holder"] == {"id": "alice", "user_name": "Alice"} and isinstance(ack["token"], int), ack
    m = await pxtest.recv_until(bob, lambda m: m.get("type") == "PRESENCE" and m.get("locks"),
                                what="PRESENCE with alice's lock")
    assert [(lk["field"], lk["user"], lk["token"]) for lk in m["locks"]] == [("notes", "alice", ack["token"])], m

    view = json.loads(redis.cli("GET", f"presence:{{{tenant}:order:{order}}}:view").stdout)
    assert sorted(t["user"] for t in view["tabs"]) == ["alice", "bob"], view
    assert [(lk["field"], lk["user"]) for lk in view["locks"]] == [("notes", "alice")], view

    status, body = rest(stack, "GET", f"/api/v1/presence/order/{order}/viewers", bob_tok)
    assert status == 200 and [v["id"] for v in body["data"]["viewers"]] == ["alice"], (status, body)
    await alice.close()
    await bob.close()

    r = stack.verify()
    assert r.returncode == 0 and "EQUAL: 0 differences" in r.stdout, (r.returncode, r.stdout[-1500:], r.stderr[-1500:])


if __name__ == "__main__":
    pxtest.run(test, "test_redis_unix")
