#!/usr/bin/python3
"""The gateway's WebSocket protocol end to end (real gateway, processor,
Kafka, Redis; real WebSocket clients), every message checked field by field:

- the first PRESENCE after a SUB shows the subscriber, as it declared
  itself, even before the processor has folded the SUB (here: no processor
  at all yet); then PRESENCE of two users (viewers, users, locks);
- LOCK without a processor: ERROR TIMEOUT echoing the request id;
- two users contend for one field: LOCK_ACK to both (granted with a token,
  denied naming the holder), even with the same client request id; tokens
  strictly increase; UNLOCK frees the field; only the holder's UNLOCK does;
- HB with mode/dirty/status/field/cursor shows in the other's PRESENCE;
- stale/busyBy after a MUTATING and version after a MUTATED produced by a
  test producer (JSON lifecycle values);
- a client killed without UNSUB/UNLOCK: its presence and locks are gone;
- protocol errors (BAD_JSON, BAD_TYPE, BAD_FIELD, NOT_SUBSCRIBED,
  FORBIDDEN) keep the connection serving;
- an HB without entity and id: NOT_SUBSCRIBED (with its request id) on a
  connection without subscriptions, applied to every subscription on one
  with several;
- a 4000-byte message (over the gateway's 1 KiB receive chunk) is served,
  with and without permessage-deflate;
- /metrics counts messages by type, errors by code, LOCK_ACK latency.
"""
import asyncio
import json
import time

import websockets

import pxtest


def presence(pred=lambda m: True):
    return lambda m: m.get("type") == "PRESENCE" and pred(m)


async def test(stack):
    tenant = pxtest.unique("t")
    order = pxtest.unique("o")
    stack.start_gateway("--set", "limits.lock_timeout_ms=1500")
    stack.wait_ready()

    alice = await websockets.connect(stack.ws_url(pxtest.token("alice", tenant, "Alice")))
    await alice.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tab_id": "ta",
                                 "mode": "edit", "request_id": "s1"}))
    # No processor yet, so Redis does not hold alice's tab: the gateway
    # merges it into her PRESENCEs until the view shows it.
    m = await pxtest.recv_until(alice, presence(), what="first PRESENCE")
    assert m == {"type": "PRESENCE", "entity": "order", "id": order, "users": ["alice"],
                 "viewers": [{"id": "alice", "user_name": "Alice", "tabs": 1, "has_dirty_tab": False,
                              "mode": "edit", "status": "online"}],
                 "locks": [], "stale": False, "busyBy": None, "version": 0}, m

    # No processor yet: the LOCK's outcome never comes back -> TIMEOUT.
    t0 = time.monotonic()
    await alice.send(json.dumps({"type": "LOCK", "field": "note", "request_id": "r0"}))
    m = await pxtest.recv_until(alice, lambda m: m.get("type") == "ERROR", timeout=10, what="ERROR TIMEOUT")
    took = time.monotonic() - t0
    assert m["code"] == "TIMEOUT" and m["request_id"] == "r0" and m["message"], m
    assert 1.3 < took < 5, took

    stack.start_processor()
    # The processor grants the timed-out LOCK late; the PRESENCE says so.
    m = await pxtest.recv_until(alice, presence(lambda m: m["users"] == ["alice"] and m["locks"]),
                                what="PRESENCE with alice and her late lock")
    assert m["viewers"] == [{"id": "alice", "user_name": "Alice", "tabs": 1, "has_dirty_tab": False,
                             "mode": "edit", "status": "online"}], m
    assert [(l["field"], l["user"], l["user_name"], l["tab_id"]) for l in m["locks"]] == \
        [("note", "alice", "Alice", "ta")], m
    note_token = m["locks"][0]["token"]
    assert isinstance(note_token, int) and m["locks"][0]["expires_at"] > time.time() * 1000, m

    bob = await websockets.connect(stack.ws_url(pxtest.token("bob", tenant, "Bob")))
    await bob.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "tab_id": "tb"}))
    for ws in (alice, bob):
        m = await pxtest.recv_until(ws, presence(lambda m: sorted(m["users"]) == ["alice", "bob"]),
                                    what="PRESENCE with both")
        v = {x["id"]: x for x in m["viewers"]}
        assert v["bob"] == {"id": "bob", "user_name": "Bob", "tabs": 1, "has_dirty_tab": False,
                            "mode": "view", "status": "online"}, m

    # Contention: alice first, then bob with the same client request id.
    await alice.send(json.dumps({"type": "LOCK", "entity": "order", "id": order, "field": "amount",
                                 "request_id": "same"}))
    a = await pxtest.recv_until(alice, lambda m: m.get("type") == "LOCK_ACK", what="alice's LOCK_ACK")
    assert a["entity"] == "order" and a["id"] == order and a["field"] == "amount", a
    assert a["success"] is True and a["holder"] == {"id": "alice", "user_name": "Alice"}, a
    assert a["request_id"] == "same" and isinstance(a["token"], int) and a["token"] > note_token, a
    await bob.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "same"}))
    b = await pxtest.recv_until(bob, lambda m: m.get("type") == "LOCK_ACK", what="bob's LOCK_ACK")
    assert b == {"type": "LOCK_ACK", "entity": "order", "id": order, "field": "amount", "success": False,
                 "holder": {"id": "alice", "user_name": "Alice"}, "token": None, "request_id": "same"}, b
    m = await pxtest.recv_until(bob, presence(lambda m: len(m["locks"]) == 2), what="PRESENCE with 2 locks")
    assert [(l["field"], l["user"], l["token"]) for l in m["locks"]] == \
        [("amount", "alice", a["token"]), ("note", "alice", note_token)], m

    # Re-LOCK by the holder: granted again, same token. A LOCK without a request id.
    await alice.send(json.dumps({"type": "LOCK", "field": "amount"}))
    a2 = await pxtest.recv_until(alice, lambda m: m.get("type") == "LOCK_ACK", what="re-LOCK ACK")
    assert a2["success"] is True and a2["token"] == a["token"] and a2["request_id"] is None, a2

    # bob's UNLOCK of alice's field changes nothing; alice's frees it.
    await bob.send(json.dumps({"type": "UNLOCK", "field": "amount", "request_id": "u0"}))
    await alice.send(json.dumps({"type": "UNLOCK", "field": "amount", "request_id": "u1"}))
    await pxtest.recv_until(bob, presence(lambda m: [l["field"] for l in m["locks"]] == ["note"]),
                            what="PRESENCE after alice's UNLOCK")
    await bob.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "b2"}))
    b2 = await pxtest.recv_until(bob, lambda m: m.get("type") == "LOCK_ACK", what="bob's second LOCK_ACK")
    assert b2["success"] is True and b2["holder"] == {"id": "bob", "user_name": "Bob"}, b2
    assert b2["token"] > a["token"] and b2["request_id"] == "b2", b2

    # HB fields show in the other user's PRESENCE.
    await bob.send(json.dumps({"type": "HB", "entity": "order", "id": order, "mode": "edit", "dirty": True,
                               "status": "away", "field": "amount", "cursor": "line 3"}))
    m = await pxtest.recv_until(alice, presence(lambda m: any(
        v["id"] == "bob" and v["status"] == "away" for v in m["viewers"])), what="PRESENCE with bob away")
    v = {x["id"]: x for x in m["viewers"]}
    assert v["bob"] == {"id": "bob", "user_name": "Bob", "tabs": 1, "has_dirty_tab": True,
                        "mode": "edit", "status": "away"}, m

    # Lifecycle: MUTATING -> stale with busyBy; MUTATED -> cleared, version 7.
    prod = stack.producer()
    key = f"{tenant}:order:{order}"
    prod.produce(stack.topic("core.entities.lifecycle.mutating"), key=key,
                 value=json.dumps({"type": "MUTATING", "tenant": tenant, "entity": "order", "id": order,
                                   "busy_by": "erp-sync", "write_id": "w1"}))
    prod.flush(10)
    m = await pxtest.recv_until(alice, presence(lambda m: m["stale"]), what="stale PRESENCE")
    assert m["busyBy"] == "erp-sync" and m["version"] == 0, m
    prod.produce(stack.topic("core.entities.lifecycle.mutated"), key=key,
                 value=json.dumps({"type": "MUTATED", "tenant": tenant, "entity": "order", "id": order,
                                   "write_id": "w1", "version": 7}))
    prod.flush(10)
    m = await pxtest.recv_until(alice, presence(lambda m: not m["stale"] and m["version"] == 7),
                                what="PRESENCE with version 7")
    assert m["busyBy"] is None, m

    # Protocol errors: an ERROR each, the connection keeps serving.
    cases = [
        ("{not json", "BAD_JSON", None),
        (json.dumps({"type": "NOPE", "request_id": "e1"}), "BAD_TYPE", "e1"),
        (json.dumps({"type": "HB", "mode": "fly", "request_id": "e2"}), "BAD_FIELD", "e2"),
        (json.dumps({"type": "LOCK", "request_id": "e3"}), "BAD_FIELD", "e3"),
        (json.dumps({"type": "SUB", "entity": "order", "id": "bad id!", "request_id": "e4"}), "BAD_FIELD", "e4"),
        (json.dumps({"type": "LOCK", "entity": "order", "id": "other", "field": "x", "request_id": "e5"}),
         "NOT_SUBSCRIBED", "e5"),
        (json.dumps({"type": "SUB", "entity": "order", "id": order, "tenant": "someone-else",
                     "request_id": "e6"}), "FORBIDDEN", "e6"),
        (json.dumps({"type": "UNSUB", "entity": "invoice", "id": "1", "request_id": "e7"}), "NOT_SUBSCRIBED", "e7"),
    ]
    for raw, code, rid in cases:
        await bob.send(raw)
        e = await pxtest.recv_until(bob, lambda m: m.get("type") == "ERROR", what=f"ERROR {code}")
        assert e["code"] == code and e["request_id"] == rid and e["message"], (raw, e)

    # An HB without entity and id: NOT_SUBSCRIBED while the connection holds
    # no subscription; with several, it applies to all of them (eve's dirty
    # flag shows to bob on order and to fred on order2).
    order2 = pxtest.unique("o")
    eve = await websockets.connect(stack.ws_url(pxtest.token("eve", tenant, "Eve")))
    await eve.send(json.dumps({"type": "HB", "dirty": True, "request_id": "h0"}))
    e = await pxtest.recv_until(eve, lambda m: m.get("type") == "ERROR", timeout=5, what="NOT_SUBSCRIBED for an HB")
    assert e["code"] == "NOT_SUBSCRIBED" and e["request_id"] == "h0" and e["message"], e
    fred = await websockets.connect(stack.ws_url(pxtest.token("fred", tenant, "Fred")))
    await fred.send(json.dumps({"type": "SUB", "entity": "order", "id": order2}))
    for o in (order, order2):
        await eve.send(json.dumps({"type": "SUB", "entity": "order", "id": o}))
    for ws, o in ((bob, order), (fred, order2)):
        await pxtest.recv_until(ws, presence(lambda m: m["id"] == o and "eve" in m["users"]), what=f"eve on {o}")
    await eve.send(json.dumps({"type": "HB", "dirty": True}))
    for ws, o in ((bob, order), (fred, order2)):
        await pxtest.recv_until(ws, presence(lambda m: m["id"] == o and any(
            v["id"] == "eve" and v["has_dirty_tab"] for v in m["viewers"])), what=f"eve dirty on {o}")
    await eve.close()
    await fred.close()

    # alice is killed (TCP gone, no close frame): her tab and her lock leave.
    alice.transport.abort()
    m = await pxtest.recv_until(bob, presence(lambda m: m["users"] == ["bob"]), what="PRESENCE without alice")
    if m["locks"] != [] and [l["field"] for l in m["locks"]] != ["amount"]:
        m = await pxtest.recv_until(bob, presence(lambda m: [l["field"] for l in m["locks"]] == ["amount"]),
                                    what="PRESENCE with alice's lock released")
    assert [(l["field"], l["user"]) for l in m["locks"]] == [("amount", "bob")], m

    # bob's explicit UNSUB releases his lock too; a new watcher sees nothing left.
    await bob.send(json.dumps({"type": "UNSUB"}))
    carol = await websockets.connect(stack.ws_url(pxtest.token("carol", tenant, "Carol")), compression=None)
    # 4000 bytes (unknown keys are ignored): several receive chunks of the
    # gateway, reassembled into one message
    sub = json.dumps({"type": "SUB", "entity": "order", "id": order, "pad": "p" * 3900})
    assert 3950 < len(sub) <= 4096, len(sub)
    await carol.send(sub)
    m = await pxtest.recv_until(carol, presence(lambda m: m["users"] == ["carol"] and not m["locks"]),
                                what="PRESENCE with carol alone and no lock")
    assert m["version"] == 7, m
    dave = await websockets.connect(stack.ws_url(pxtest.token("dave", tenant, "Dave")))  # deflate
    await dave.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "pad": "q" * 3900}))
    await pxtest.recv_until(dave, presence(lambda m: "dave" in m["users"]), what="PRESENCE after dave's big SUB")
    await dave.close()
    await carol.close()
    await bob.close()

    status, body = stack.http("/metrics")
    assert status == 200, status
    lines = body.splitlines()

    def metric(prefix):
        found = [l for l in lines if l.startswith(prefix + " ")]
        assert found, (prefix, [l for l in lines if "gateway" in l])
        return float(found[0].split()[-1])
    assert metric('presence_gateway_messages_in_by_type_total{type="LOCK"}') >= 5
    assert metric('presence_gateway_messages_in_by_type_total{type="UNLOCK"}') >= 2
    assert metric('presence_gateway_messages_out_by_type_total{type="LOCK_ACK"}') >= 4
    assert metric('presence_gateway_errors_by_code_total{code="TIMEOUT"}') == 1
    assert metric('presence_gateway_errors_by_code_total{code="BAD_FIELD"}') >= 3
    assert metric('presence_gateway_lock_ack_latency_seconds_count') >= 4
    assert metric('presence_gateway_push_latency_seconds_count') >= 1
    # the Kafka leg of every LOCK answered (its record was acknowledged by
    # the broker before the processor could fold it) is timed
    assert metric('presence_gateway_kafka_delivery_seconds_count{topic="locks"}') >= \
        metric('presence_gateway_messages_out_by_type_total{type="LOCK_ACK"}')
    # carol (no permessage-deflate) is written to at once; alice, bob and
    # dave (deflated) always through their queues
    direct = metric('presence_gateway_ws_writes_total{path="direct"}')
    queued = metric('presence_gateway_ws_writes_total{path="queued"}')
    assert direct >= 1 and queued >= 10, (direct, queued)
    assert direct + queued == metric('presence_gateway_messages_out_total'), (direct, queued)


if __name__ == "__main__":
    pxtest.run(test, "test_gateway_ws")
