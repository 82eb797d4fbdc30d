#!/usr/bin/python3
"""The gateway when its dependencies go away mid-session, on a private
Kafka + Redis (scripts/stack.sh up in the test's own state dir, so the
shared fixture's broker is never touched):

1. Kafka stopped: /readyz 503 (kafka=down); WebSocket HB, SUB and LOCK get
   ERROR UNAVAILABLE with their request id; REST heartbeat 503
   UNAVAILABLE; reads (REST GET) still served from Redis.
2. Kafka back: /readyz 200; LOCK gets its LOCK_ACK again.
3. Redis stopped: /readyz 503 (redis=down); REST GETs 503 UNAVAILABLE; a
   SUB is published but answered UNAVAILABLE for its read; heartbeats
   (REST and WebSocket) still reach Kafka (read back from the topic).
4. Redis back: /readyz 200; REST GET 200; the watched record's PRESENCE is
   pushed again without any client action.
"""
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

import websockets

import pxtest

SRC = os.environ["PX_SOURCE_DIR"]
STACK_SH = os.path.join(SRC, "scripts", "stack.sh")


class Proc:
    """A stack process that can be stopped and started again with the same
    command line (same ports, same data dir)."""

    def __init__(self, state, name, argv=None):
        self.state, self.name = state, name
        self.pidfile = os.path.join(state, f"{name}.pid")
        pid = int(open(self.pidfile).read().strip())
        # redis-server rewrites its cmdline (proc title): its argv is given
        self.argv = argv or open(f"/proc/{pid}/cmdline", "rb").read().rstrip(b"\0").split(b"\0")
        self.cwd = os.readlink(f"/proc/{pid}/cwd")
        self.pid = pid

    def stop(self):
        os.kill(self.pid, signal.SIGKILL)
        for _ in range(200):
            try:
                os.kill(self.pid, 0)
                if open(f"/proc/{self.pid}/stat").read().split()[2] == "Z":
                    break
            except (ProcessLookupError, FileNotFoundError):
                break
            time.sleep(0.05)

    def start(self):
        out = open(os.path.join(self.state, f"{self.name}.restart.out"), "ab")
        p = subprocess.Popen(self.argv, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             start_new_session=True)
        self.pid = p.pid
        with open(self.pidfile, "w") as f:
            f.write(f"{p.pid}\n")


def wait_readyz(stack, status, needle, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = stack.http("/readyz")
            if last[0] == status and needle in last[1]:
                return last
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"/readyz never became {status} with {needle!r}: {last}")


async def expect_error(ws, code, rid, timeout=15):
    m = await pxtest.recv_until(ws, lambda m: m.get("type") == "ERROR", timeout=timeout, what=f"ERROR {code}")
    assert m["code"] == code and m["request_id"] == rid, m
    return m


def heartbeats_with_tab(stack, tab, timeout=30):
    """Records of presence.heartbeats (this test's topic) with tab_id tab."""
    from confluent_kafka import Consumer
    import pxavro
    codec = pxavro.Codec()
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("rd-"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([stack.topic("presence.heartbeats")])
    found, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline and not found:
            m = c.poll(0.3)
            if m is None or m.error():
                continue
            ev = codec.decode(m.value())[1]
            if ev.get("tab_id") == tab:
                found.append(ev)
    finally:
        c.close()
    return found


async def test(stack):
    state = os.environ["PX_STACK_DIR"]
    kafka = Proc(state, "kafka")
    redis = Proc(state, "redis", ["redis-server", "--port", stack.env["REDIS_PORT"], "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--daemonize", "no",
                                  "--dir", os.path.join(state, "redis"),
                                  "--logfile", os.path.join(state, "redis.log")])
    tenant = pxtest.unique("t")
    order, order2 = pxtest.unique("o"), pxtest.unique("o")
    stack.start_processor()
    # idle_ping_s=0: the test's blocking helpers (readiness polls while a
    # broker restarts) stall the client's event loop, so it could not PONG
    stack.start_gateway("--set", "limits.lock_timeout_ms=8000", "--set", "limits.idle_ping_s=0")
    stack.wait_ready()
    tok = pxtest.token("alice", tenant, "Alice")
    base = f"/api/v1/presence/order/{order}"

    alice = await websockets.connect(stack.ws_url(tok))
    await alice.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tab_id": "ta"}))
    await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m["users"] == ["alice"],
                            what="PRESENCE with alice")

    # 1. Kafka down
    kafka.stop()
    st, body = wait_readyz(stack, 503, "kafka=down")
    assert "redis=up" in body, body
    await alice.send(json.dumps({"type": "HB", "dirty": True, "request_id": "h1"}))
    await expect_error(alice, "UNAVAILABLE", "h1")
    await alice.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "l1"}))
    await expect_error(alice, "UNAVAILABLE", "l1")
    await alice.send(json.dumps({"type": "SUB", "entity": "order", "id": order2, "request_id": "s1"}))
    await expect_error(alice, "UNAVAILABLE", "s1")
    st, body = stack.rest("POST", base + "/heartbeat", tok, {"tab_id": "r1"})
    assert st == 503 and body["error"]["code"] == "UNAVAILABLE", (st, body)
    st, body = stack.rest("GET", base + "/viewers", tok)
    assert st == 200 and body["success"] is True, (st, body)  # reads come from Redis

    # 2. Kafka back
    kafka.start()
    wait_readyz(stack, 200, "ready", timeout=90)
    await alice.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "l2"}))
    m = await pxtest.recv_until(alice, lambda m: m.get("type") in ("LOCK_ACK", "ERROR"), timeout=60,
                                what="LOCK_ACK after Kafka's return")
    assert m["type"] == "LOCK_ACK" and m["success"] is True and m["request_id"] == "l2", m
    st, body = stack.rest("POST", base + "/heartbeat", tok, {"tab_id": "r1"})
    assert st == 200, (st, body)

    # 3. Redis down
    redis.stop()
    st, body = wait_readyz(stack, 503, "redis=down")
    assert "kafka=up" in body, body
    st, body = stack.rest("GET", base + "/viewers", tok)
    assert st == 503 and body == {"success": False, "error": {"code": "UNAVAILABLE",
                                                               "message": body["error"]["message"]}}, body
    st, body = stack.rest("GET", base, tok)
    assert st == 503 and body["error"]["code"] == "UNAVAILABLE", (st, body)
    st, body = stack.rest("POST", base + "/heartbeat", tok, {"tab_id": "during-redis-outage"})
    assert st == 200 and body["data"]["tab_id"] == "during-redis-outage", (st, body)
    await alice.send(json.dumps({"type": "SUB", "entity": "order", "id": order2, "request_id": "s2"}))
    await expect_error(alice, "UNAVAILABLE", "s2")
    await alice.send(json.dumps({"type": "HB", "status": "away", "request_id": "h2"}))
    evs = heartbeats_with_tab(stack, "during-redis-outage")
    assert evs and evs[0]["type"] == "HB" and evs[0]["user_id"] == "alice", evs

    # 4. Redis back (empty: the processor rebuilds it from the log)
    redis.start()
    wait_readyz(stack, 200, "ready", timeout=60)
    m = await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m["id"] == order2
                                and m["users"] == ["alice"], timeout=60, what="PRESENCE of order2 after Redis")
    st, body = stack.rest("GET", base + "/viewers", tok)
    assert st == 200 and body["success"] is True, (st, body)
    await alice.close()

    status, body = stack.http("/metrics")
    lines = body.splitlines()

    def metric(prefix):
        found = [l for l in lines if l.startswith(prefix + " ")]
        assert found, prefix
        return float(found[0].split()[-1])
    assert metric('presence_gateway_errors_by_code_total{code="UNAVAILABLE"}') >= 7
    assert metric("presence_gateway_redis_errors_total") >= 1
    assert metric("presence_gateway_kafka_errors_total") >= 1


def main():
    state = tempfile.mkdtemp(prefix="px-gw-outage-")
    up = subprocess.run(["bash", STACK_SH, "up", "--state", state, "--partitions", "3"],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if up.returncode != 0:
        print(up.stdout, file=sys.stderr)
        print("test_gateway_outage: 0 passed, 1 failed (private stack did not start)")
        sys.exit(1)
    os.environ["PX_STACK_DIR"] = state
    try:
        pxtest.run(test, "test_gateway_outage")
    finally:
        subprocess.run(["bash", STACK_SH, "down", "--state", state], stdout=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
