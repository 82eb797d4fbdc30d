#!/usr/bin/python3
"""The gateway's producer fails for good (a fatal error, as librdkafka 2.0's
idempotent producer raises when a partition leader's loss desynchronises
its sequence numbers; forced here with fault.kafka_fatal_ms, which calls
rd_kafka_test_fatal_error): the gateway says so once, makes a new producer
and serves again, on the same process and the same client connection:

- before the fault: a LOCK is granted;
- the fault: logged once ("failed for good: making a new one"), and the
  new producer started ("kafka producer started" a second time);
- after it: /readyz ready, a LOCK on another field granted, a heartbeat
  over REST accepted, the WebSocket never closed.
"""
import asyncio
import json
import time

import websockets

import pxtest


def log_count(d, text):
    d.log.flush()
    with open(d.log_path, encoding="utf-8", errors="replace") as f:
        return f.read().count(text)


async def lock(ws, field, rid):
    await ws.send(json.dumps({"type": "LOCK", "field": field, "request_id": rid}))
    m = await pxtest.recv_until(ws, lambda m: m.get("type") in ("LOCK_ACK", "ERROR") and m.get("request_id") == rid,
                                timeout=30, what=f"answer to {rid}")
    return m


async def test(stack):
    tenant, order = pxtest.unique("t"), pxtest.unique("o")
    stack.start_processor()
    gw = stack.start_gateway("--set", "fault.kafka_fatal_ms=6000")
    stack.wait_ready()
    tok = pxtest.token("alice", tenant, "Alice")
    ws = await websockets.connect(stack.ws_url(tok))
    await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tab_id": "ta"}))
    await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE", what="first PRESENCE")
    m = await lock(ws, "amount", "r1")
    assert m["type"] == "LOCK_ACK" and m["success"] is True, m

    deadline = time.monotonic() + 30
    while log_count(gw, "kafka producer failed for good: making a new one") == 0:
        assert time.monotonic() < deadline, "the forced fatal error was not reported"
        await asyncio.sleep(0.2)
    deadline = time.monotonic() + 30
    while log_count(gw, "kafka producer started") < 2:
        assert time.monotonic() < deadline, "no new producer after the fatal error"
        await asyncio.sleep(0.2)
    stack.wait_ready(timeout=30)
    m = await lock(ws, "note", "r2")
    assert m["type"] == "LOCK_ACK" and m["success"] is True and m["field"] == "note", m
    assert log_count(gw, "kafka producer failed for good") == 1
    st, body = stack.rest("POST", f"/api/v1/presence/order/{order}/heartbeat", tok, {"tab_id": "r1"})
    assert st == 200 and body["success"] is True, (st, body)
    assert ws.close_code is None, ws.close_code
    await ws.close()


if __name__ == "__main__":
    pxtest.run(test, "test_gateway_kafka_fatal")
