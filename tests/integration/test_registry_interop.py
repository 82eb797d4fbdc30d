#!/usr/bin/python3
"""The Confluent wire format against a real schema registry (Apicurio
Registry, started by the stack fixture with --registry), and consumers no
one here wrote:

- the processor and the gateway run with avro.wire_format=confluent: two
  WebSocket users take and contend for a lock; every change event in
  presence.changes is 00 + a registry id, and the Avro deserializer of
  Debian's python3-confluent-kafka (with fastavro) decodes each one;
- records produced by that client's own AvroSerializer into the input
  topics are folded; single-object records in the same topics too (mixed
  framings), and presencectl verify says EQUAL;
- evolution: ChangeEvent version 2 (a new optional field) registered under
  BACKWARD compatibility, read by a version-1 reader and a version-2
  reader; a LifecycleEvent version 2 record is folded by the processor
  (read into its version 1);
- bad input: an id the registry does not know and a truncated header go to
  the DLQ with the reason; a registry that stops answering mid-run
  (SIGSTOP) makes the processor not-ready and wait, nothing is dead-
  lettered, and the record is folded once it answers again (SIGCONT).
"""
import asyncio
import json
import os
import signal
import struct
import subprocess
import time
import urllib.request

import websockets
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

import pxavro
import pxtest

SCHEMAS = os.path.join(os.environ["PX_SOURCE_DIR"], "schemas")


def schema_text(name):
    with open(os.path.join(SCHEMAS, name + ".avsc")) as f:
        return f.read()


def with_note(text):
    """Version 2 of a schema: a new optional field at the end."""
    s = json.loads(text)
    s["fields"].append({"name": "note", "type": ["null", "string"], "default": None})
    return json.dumps(s)


def read_all(stack, topic, until, timeout=60.0):
    """Raw committed records (key, value, headers) of topic from the start,
    until until(list) holds."""
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("rd-"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    c.subscribe([topic])
    out, deadline = [], time.time() + timeout
    try:
        while time.time() < deadline and not until(out):
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append((m.key().decode(), m.value(), dict(m.headers() or [])))
    finally:
        c.close()
    assert until(out), f"{topic}: {len(out)} records after {timeout}s"
    return out


def registry_pid(stack):
    with open(os.path.join(os.environ["PX_STACK_DIR"], "registry.pid")) as f:
        return int(f.read())


async def test(stack):
    url = stack.env.get("REGISTRY_URL", "")
    assert url, "the stack fixture runs without --registry: REGISTRY_URL missing from stack.env"
    reg = SchemaRegistryClient({"url": url})
    cf = ["--set", "avro.wire_format=confluent", "--set", f"schema.registry.url={url}"]
    # a frozen registry holds the processor's loop for this long per try
    stack.start_processor(*cf, "--set", "schema.registry.timeout_ms=3000")
    stack.start_gateway(*cf)
    stack.wait_ready()
    tenant, order = pxtest.unique("t"), pxtest.unique("o")
    subjects = set(reg.get_subjects())
    for t in ("presence.changes", "presence.heartbeats", "presence.locks", "core.entities.lifecycle.mutating"):
        assert f"{stack.topic(t)}-value" in subjects, (t, subjects)

    # --- 1. WebSocket users through the gateway ---------------------------
    alice = await websockets.connect(stack.ws_url(pxtest.token("alice", tenant, "Alice")))
    bob = await websockets.connect(stack.ws_url(pxtest.token("bob", tenant, "Bob")))
    for ws in (alice, bob):
        await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": order, "mode": "edit"}))
    for ws in (alice, bob):
        await pxtest.recv_until(ws, lambda m: m.get("type") == "PRESENCE" and sorted(m.get("users", [])) ==
                                ["alice", "bob"], what="PRESENCE naming both")
    await alice.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "a1"}))
    ack = await pxtest.recv_until(alice, lambda m: m.get("type") == "LOCK_ACK", what="alice's LOCK_ACK")
    assert ack["success"] is True, ack
    await bob.send(json.dumps({"type": "LOCK", "field": "amount", "request_id": "b1"}))
    ack = await pxtest.recv_until(bob, lambda m: m.get("type") == "LOCK_ACK", what="bob's LOCK_ACK")
    assert ack["success"] is False and ack["holder"]["id"] == "alice", ack

    # The gateway's input records are Confluent-framed.
    hb = read_all(stack, stack.topic("presence.heartbeats"), lambda o: len(o) >= 2)
    assert all(v[0] == 0 for _, v, _ in hb), [v[:5] for _, v, _ in hb]

    # Every change is 00 + id, and confluent-kafka's deserializer reads it.
    deser = AvroDeserializer(reg)
    ctx = SerializationContext(stack.topic("presence.changes"), MessageField.VALUE)
    mine = lambda o: [r for r in o if r[0].startswith(tenant + ":")]  # noqa: E731
    changes = mine(read_all(stack, stack.topic("presence.changes"), lambda o: len(mine(o)) >= 4))
    types = []
    for key, value, _ in changes:
        assert value[0] == 0, value[:5]
        d = deser(value, ctx)
        assert f"{d['tenant']}:{d['entity']}:{d['id']}" == key, (d, key)
        types.append(d["type"])
    assert types.count("JOINED") == 2 and "LOCK_GRANTED" in types and "LOCK_DENIED" in types, types
    print(f"{len(changes)} change events decoded by confluent-kafka's AvroDeserializer: {types}", flush=True)

    # The example analytics consumer reads them through the registry too.
    script = os.path.join(os.environ["PX_SOURCE_DIR"], "tools", "analytics", "concurrent_editors.py")
    base = ["/usr/bin/python3", script, "--bootstrap", stack.env["KAFKA_BOOTSTRAP"], "--topic",
            stack.topic("presence.changes"), "--json"]
    r = subprocess.run(base + ["--registry", url], capture_output=True, text=True, timeout=90)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and any(row["entity"] == f"{tenant}:order:{order}" and row["editors"] == ["alice"]
                                     for row in rows), (r.stdout, r.stderr)
    r = subprocess.run(base, capture_output=True, text=True, timeout=90)
    assert "pass --registry" in r.stderr, r.stderr

    # --- 2. Records from confluent-kafka's serializer; mixed framings -----
    prod = stack.producer()
    lc_topic = stack.topic("core.entities.lifecycle.mutating")
    ser = AvroSerializer(reg, schema_text("LifecycleEvent"))
    now = int(time.time() * 1000)
    key = f"{tenant}:order:{order}"
    rec = {"type": "MUTATING", "tenant": tenant, "entity": "order", "id": order, "ts": now, "busy_by": "erp",
           "write_id": "w1", "version": None, "expires_at_ms": None}
    prod.produce(lc_topic, key=key, value=ser(rec, SerializationContext(lc_topic, MessageField.VALUE)))
    codec = pxavro.Codec()
    prod.produce(stack.topic("core.entities.lifecycle.mutated"), key=key,
                 value=codec.encode("lifecycle", dict(type="MUTATED", tenant=tenant, entity="order", id=order,
                                                      ts=now + 1, write_id="w1", version=7)))
    prod.flush(10)
    await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m.get("version") == 7,
                            what="PRESENCE with version 7 (a Confluent MUTATING, a single-object MUTATED)")

    # --- 3. Evolution -----------------------------------------------------
    ch_subject = f"{stack.topic('presence.changes')}-value"
    v2 = Schema(with_note(schema_text("ChangeEvent")), "AVRO")
    assert reg.test_compatibility(ch_subject, v2), "ChangeEvent v2 must be BACKWARD compatible"
    evo_topic = stack.topic("presence.changes")  # subject of the changes; records go to a side topic
    ser2 = AvroSerializer(reg, v2.schema_str, conf={"auto.register.schemas": True})
    change = {"type": "JOINED", "tenant": tenant, "entity": "order", "id": "evo", "ts": now, "tab_id": "t1",
              "user_id": "u1", "user_name": None, "field": None, "token": None, "holder_user_id": None,
              "holder_name": None, "busy_by": None, "version": None, "request_id": None, "src_topic": None,
              "src_partition": None, "src_offset": None, "note": "hello"}
    blob = ser2(change, SerializationContext(evo_topic, MessageField.VALUE))
    v2_id = struct.unpack(">I", blob[1:5])[0]
    versions = reg.get_versions(ch_subject)
    assert len(versions) >= 2, versions
    old = AvroDeserializer(reg, schema_text("ChangeEvent"))(blob, SerializationContext(evo_topic, MessageField.VALUE))
    new = AvroDeserializer(reg, v2.schema_str)(blob, SerializationContext(evo_topic, MessageField.VALUE))
    assert "note" not in old and old["user_id"] == "u1", old
    assert new["note"] == "hello" and new["user_id"] == "u1", new
    print(f"ChangeEvent v2 (id {v2_id}, versions {versions}): read by a v1 reader and a v2 reader", flush=True)

    # The processor reads a newer LifecycleEvent into its own version.
    ser_lc2 = AvroSerializer(reg, with_note(schema_text("LifecycleEvent")))
    rec2 = dict(rec, ts=now + 2, busy_by="erp2", write_id="w2", note="v2 writer")
    prod.produce(lc_topic, key=key, value=ser_lc2(rec2, SerializationContext(lc_topic, MessageField.VALUE)))
    prod.flush(10)
    await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m.get("stale") and
                            m.get("busyBy") == "erp2",
                            what="PRESENCE stale, busy by erp2 (a LifecycleEvent v2 record)")

    # --- 4. Bad input: unknown id, truncated header -> DLQ with the reason
    prod.produce(lc_topic, key=key, value=b"\x00\x00\x0f\x42\x3f\x02")   # id 999999
    prod.produce(lc_topic, key=key, value=b"\x00\x00\x01")                # 3 of 5 header bytes
    prod.flush(10)
    dlq = read_all(stack, lc_topic + ".dlt", lambda o: len(o) >= 2)
    errors = [h.get("px.error", b"").decode() for _, _, h in dlq]
    assert any("unknown schema id 999999" in e for e in errors), errors
    assert any("confluent header truncated" in e for e in errors), errors

    # --- 5. The registry stops answering mid-run --------------------------
    # A schema id the processor has not seen yet, registered now ...
    lc3 = json.loads(with_note(schema_text("LifecycleEvent")))
    lc3["fields"].append({"name": "origin", "type": ["null", "string"], "default": None})
    ser_lc3 = AvroSerializer(reg, json.dumps(lc3))
    rec3 = dict(rec2, ts=now + 3, busy_by="erp3", write_id="w3", origin="batch")
    value3 = ser_lc3(rec3, SerializationContext(lc_topic, MessageField.VALUE))
    pid = registry_pid(stack)
    os.kill(pid, signal.SIGSTOP)  # ... then the registry freezes
    try:
        prod.produce(lc_topic, key=key, value=value3)
        prod.flush(10)
        deadline, seen_down = time.time() + 30, False
        while time.time() < deadline and not seen_down:
            try:  # between tries (the backoff) the loop answers at once
                code, body = stack.http("/readyz", port=stack.proc_port)
                seen_down = code == 503 and "registry=down" in body
            except OSError:
                pass
            time.sleep(0.2)
        assert seen_down, "the processor did not report registry=down"
    finally:
        os.kill(pid, signal.SIGCONT)
    t0 = time.time()
    await pxtest.recv_until(alice, lambda m: m.get("type") == "PRESENCE" and m.get("busyBy") == "erp3", timeout=60,
                            what="PRESENCE busy by erp3 after the registry came back")
    print(f"registry frozen: processor not-ready, record folded {time.time() - t0:.1f} s after SIGCONT", flush=True)
    dlq_after = read_all(stack, lc_topic + ".dlt", lambda o: len(o) >= 2)
    assert len(dlq_after) == 2, [h for _, _, h in dlq_after]  # nothing dead-lettered by the outage

    # --- 6. presencectl verify over the mixed topics ----------------------
    r = stack.verify("--set", f"schema.registry.url={url}")
    assert r.returncode == 0 and "EQUAL" in r.stdout, r.stdout + r.stderr
    r = stack.verify()  # without the registry the Confluent records do not decode: counted, not equal
    assert r.returncode != 0, r.stdout
    for ws in (alice, bob):
        await ws.close()


if __name__ == "__main__":
    pxtest.run(test, "test_registry_interop")
