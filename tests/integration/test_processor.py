#!/usr/bin/python3
"""The processor's semantics against a real broker and Redis, with input
records produced by an independent Avro implementation (python3-avro via
confluent-kafka) and change events read back read_committed:

- lock contention: one grant, one denial naming the holder, UNLOCK by a
  non-holder refused, release, a later grant with a larger fencing token;
- lifecycle order: MUTATED before MUTATING gives the same final state as the
  other order (not stale, version set);
- a poison record lands in the DLQ with its headers while later records are
  processed;
- heartbeat expiry: an EXPIRE record times the tab out (TIMED_OUT) and the
  lock its tab held expires (LOCK_EXPIRED);
- the Redis view holds what the changes say.
"""
import json
import subprocess
import time

import pxavro
import pxtest


def redis(stack, *args):
    return subprocess.run(["redis-cli", "-p", stack.env["REDIS_PORT"], *args], capture_output=True,
                          text=True, check=True).stdout.strip()


async def test(stack):
    codec = pxavro.Codec()
    tenant = pxtest.unique("t")
    stack.start_processor("--set", "presence.ttl_ms=3000", "--set", "lock.ttl_ms=60000")
    prod = stack.producer()
    now = int(time.time() * 1000)

    def send(topic, kind, **v):
        v.setdefault("tenant", tenant)
        v.setdefault("ts", now)
        key = f"{v['tenant']}:{v['entity']}:{v['id']}"
        prod.produce(stack.topic(topic), key=key, value=codec.encode(kind, v))

    # --- locks -----------------------------------------------------------
    lk = dict(entity="order", id="L1")
    send("presence.heartbeats", "presence", type="SUB", tab_id="ta", user_id="alice", user_name="Alice",
         mode="EDIT", status="ONLINE", dirty=False, **lk)
    send("presence.heartbeats", "presence", type="SUB", tab_id="tb", user_id="bob", user_name="Bob",
         mode="VIEW", status="ONLINE", dirty=False, **lk)
    send("presence.locks", "lock", type="LOCK", field="amount", tab_id="ta", user_id="alice",
         user_name="Alice", request_id="r1", **lk)
    send("presence.locks", "lock", type="LOCK", field="amount", tab_id="tb", user_id="bob", user_name="Bob",
         request_id="r2", **lk)
    send("presence.locks", "lock", type="UNLOCK", field="amount", tab_id="tb", user_id="bob",
         user_name="Bob", request_id="r3", **lk)
    send("presence.locks", "lock", type="UNLOCK", field="amount", tab_id="ta", user_id="alice",
         user_name="Alice", request_id="r4", **lk)
    send("presence.locks", "lock", type="LOCK", field="amount", tab_id="tb", user_id="bob", user_name="Bob",
         request_id="r5", **lk)
    # --- lifecycle, both orders --------------------------------------------
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="V1",
         write_id="w1", version=5)
    send("core.entities.lifecycle.mutating", "lifecycle", type="MUTATING", entity="order", id="V1",
         write_id="w1", busy_by="erp-sync")
    send("core.entities.lifecycle.mutating", "lifecycle", type="MUTATING", entity="order", id="V2",
         write_id="w1", busy_by="erp-sync")
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="V2",
         write_id="w1", version=5)
    # --- lifecycle as JSON (no ts: the record's timestamp is used) -------------
    prod.produce(stack.topic("core.entities.lifecycle.mutating"), key=f"{tenant}:order:J1",
                 value=json.dumps({"type": "MUTATING", "tenant": tenant, "entity": "order", "id": "J1",
                                   "busyBy": "erp", "write_id": "j1"}).encode())
    prod.produce(stack.topic("core.entities.lifecycle.mutated"), key=f"{tenant}:order:J1",
                 value=json.dumps({"type": "MUTATED", "tenant": tenant, "entity": "order", "id": "J1",
                                   "write_id": "j1", "version": 3}).encode())
    # --- poison, then a good record ----------------------------------------
    prod.produce(stack.topic("presence.heartbeats"), key=f"{tenant}:order:P1", value=b"\x00not avro")
    send("presence.heartbeats", "presence", type="SUB", tab_id="tp", user_id="carol", user_name="Carol",
         entity="order", id="P1", mode="VIEW", status="ONLINE", dirty=False)
    prod.flush(10)

    def by_req(changes, rid):
        return [c for c in changes if c.get("request_id") == rid]

    def count(cs, t):
        return sum(c["type"] == t for c in cs)

    changes = stack.changes(tenant, until=lambda cs: len(by_req(cs, "r5")) >= 1 and any(
        c["id"] == "P1" for c in cs) and count(cs, "VERSION_BUMPED") >= 3 and count(cs, "STALE_SET") >= 3
        and count(cs, "STALE_CLEARED") >= 3)
    r = {rid: by_req(changes, rid) for rid in ("r1", "r2", "r3", "r4", "r5")}
    assert [c["type"] for c in r["r1"]] == ["LOCK_GRANTED"], r["r1"]
    assert [c["type"] for c in r["r2"]] == ["LOCK_DENIED"], r["r2"]
    assert r["r2"][0]["holder_user_id"] == "alice" and r["r2"][0]["holder_name"] == "Alice", r["r2"]
    assert [c["type"] for c in r["r3"]] == ["LOCK_DENIED"], r["r3"]  # bob is not the holder
    assert [c["type"] for c in r["r4"]] == ["LOCK_RELEASED"], r["r4"]
    assert [c["type"] for c in r["r5"]] == ["LOCK_GRANTED"], r["r5"]
    assert r["r5"][0]["token"] > r["r1"][0]["token"] >= 0, (r["r1"], r["r5"])
    lock = json.loads(redis(stack, "HGET", f"presence:{{{tenant}:order:L1}}:locks", "amount"))
    assert lock["user"] == "bob" and lock["token"] == r["r5"][0]["token"], lock

    # lifecycle: both orders end in the same state
    for eid, version in (("V1", "5"), ("V2", "5"), ("J1", "3")):
        meta = redis(stack, "HGETALL", f"presence:{{{tenant}:order:{eid}}}:meta").split("\n")
        meta = dict(zip(meta[0::2], meta[1::2]))
        assert meta.get("version") == version and meta.get("stale") == "0", (eid, meta)
    for eid in ("V1", "V2"):
        types = sorted(c["type"] for c in changes if c["id"] == eid)
        assert types == ["STALE_CLEARED", "STALE_SET", "VERSION_BUMPED"], (eid, types)

    # poison: in the DLQ with headers, and the record after it was processed
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("dlq-"),
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([stack.topic("presence.heartbeats.dlt")])
    dead = None
    deadline = time.time() + 20
    while dead is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            dead = m
    c.close()
    assert dead is not None, "no DLQ record"
    h = {k: v.decode() for k, v in dead.headers()}
    assert dead.value() == b"\x00not avro", dead.value()
    assert h["px.topic"] == stack.topic("presence.heartbeats") and "px.error" in h and "px.offset" in h, h
    assert any(c["id"] == "P1" and c["type"] == "JOINED" for c in changes), "record after the poison"

    # expiry: the tabs time out after 3 s without heartbeats (the processor
    # writes EXPIREs into the log), and bob's lock goes with his tab
    changes = stack.changes(tenant, timeout=40, until=lambda cs: sum(
        c["type"] == "TIMED_OUT" for c in cs) >= 3 and any(c["type"] == "LOCK_EXPIRED" for c in cs))
    timed_out = sorted(c["tab_id"] for c in changes if c["type"] == "TIMED_OUT")
    assert timed_out == ["ta", "tb", "tp"], timed_out
    expired = [c for c in changes if c["type"] == "LOCK_EXPIRED"]
    assert len(expired) == 1 and expired[0]["user_id"] == "bob" and expired[0]["field"] == "amount", expired
    assert redis(stack, "ZCARD", f"presence:{{{tenant}:order:P1}}:tabs") == "0"
    assert redis(stack, "HLEN", f"presence:{{{tenant}:order:L1}}:locks") == "0"

    # The proof of the whole run: with the processor stopped, an offline fold
    # of the log equals Redis and the committed presence.changes.
    assert stack.daemons[0].stop() == 0
    out = stack.verify("--set", "presence.ttl_ms=3000", "--set", "lock.ttl_ms=60000")
    assert out.returncode == 0 and "EQUAL: 0 differences" in out.stdout, out.stdout + out.stderr

    # A stored state that does not decode poisons its entity: its records go
    # to the DLQ and nothing overwrites the key an operator must look at.
    state_key = f"presence:{{{tenant}:order:V1}}:state"
    redis(stack, "HSET", state_key, "blob", "{corrupt")
    stack.start_processor(name="processor-2", instance="p2")
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="V1",
         write_id="w9", version=9, ts=now + 1)
    prod.flush(10)
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("dlq-"),
                  "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    c.subscribe([stack.topic("core.entities.lifecycle.mutated.dlt")])
    dead, deadline = None, time.time() + 30
    while dead is None and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            dead = m
    c.close()
    assert dead is not None, "no DLQ record for the poisoned entity"
    assert "does not decode" in dict(dead.headers())["px.error"].decode(), dead.headers()
    assert redis(stack, "HGET", state_key, "blob") == "{corrupt"


if __name__ == "__main__":
    pxtest.run(test, "test_processor")
