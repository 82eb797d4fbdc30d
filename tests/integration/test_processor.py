#!/usr/bin/python3
"""The processor's semantics against a real broker and Redis, with input
records produced by an independent Avro implementation (python3-avro via
confluent-kafka) and change events read back read_committed:

- lock contention: one grant, one denial naming the holder, UNLOCK by a
  non-holder refused, release, a later grant with a larger fencing token;
- each lock decision is published on the entity's channel early, as
  {"decided":[...]}, before the write's own notification, with the same
  outcome and token as the committed change event;
- lifecycle order: MUTATED before MUTATING gives the same final state as the
  other order (not stale, version set);
- a poison record lands in the DLQ with its headers while later records are
  processed;
- heartbeat expiry: an EXPIRE record times the tab out (TIMED_OUT) and the
  lock its tab held expires (LOCK_EXPIRED);
- the Redis view holds what the changes say;
- a failure that may pass (an entity whose stored state does not decode)
  sends the record through the retry topic, later records of the entity
  follow it in order, and both apply once after the key is repaired; an
  entity that stays broken reaches the DLQ after the third retry.
"""
import json
import signal
import subprocess
import time

from confluent_kafka import Consumer

import pxavro
import pxtest


def redis(stack, *args):
    return subprocess.run(["redis-cli", "-p", stack.env["REDIS_PORT"], *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def view(stack, key):
    """The entity's view (docs/redis-keys.md) as a dict, or None when absent."""
    out = redis(stack, "GET", f"presence:{{{key}}}:view")
    return json.loads(out) if out else None


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
    sub = pxtest.Subscriber(stack.env["REDIS_PORT"], f"presence:updates:{{{tenant}:order:L1}}")
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
    locks = view(stack, f"{tenant}:order:L1")["locks"]
    assert [(lk["field"], lk["user"], lk["token"]) for lk in locks] == [("amount", "bob", r["r5"][0]["token"])], locks

    # early decisions: every LOCK's outcome came first as {"decided":[...]}
    # (published before the batch's commit), then again in the array the
    # write script publishes; same outcome and token as the change event
    def payloads(msgs, early):
        out = []
        for _, raw in msgs:
            doc = json.loads(raw)
            if isinstance(doc, dict) == early:
                out.extend(doc["decided"] if early else doc)
        return out

    def first_index(msgs, rid, early):
        for i, (_, raw) in enumerate(msgs):
            doc = json.loads(raw)
            if isinstance(doc, dict) == early and any(
                    c.get("request_id") == rid for c in (doc["decided"] if early else doc)):
                return i
        return None

    msgs = sub.wait(lambda ms: all(first_index(ms, rid, False) is not None for rid in ("r1", "r2", "r5")),
                    what="the write notifications of r1, r2, r5")
    sub.close()
    for rid, want in (("r1", "LOCK_GRANTED"), ("r2", "LOCK_DENIED"), ("r5", "LOCK_GRANTED")):
        early = [c for c in payloads(msgs, True) if c.get("request_id") == rid and c["type"].startswith("LOCK_")]
        assert [c["type"] for c in early] == [want], (rid, early)
        assert first_index(msgs, rid, True) < first_index(msgs, rid, False), (rid, msgs)
        if want == "LOCK_GRANTED":
            assert early[0]["token"] == r[rid][0]["token"], (rid, early, r[rid])
        else:
            assert early[0]["holder"] == "alice", early

    # lifecycle: both orders end in the same state
    for eid, version in (("V1", "5"), ("V2", "5"), ("J1", "3")):
        v = view(stack, f"{tenant}:order:{eid}")
        assert v["version"] == int(version) and v["stale"] is False and v["busyBy"] == "", (eid, v)
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
    # nothing live and no version: the views are gone
    assert view(stack, f"{tenant}:order:P1") is None
    v = view(stack, f"{tenant}:order:L1")
    assert v is None or (v["tabs"] == [] and v["locks"] == [] and v["version"] > 0), v

    # The proof of the whole run: with the processor stopped, an offline fold
    # of the log equals Redis and the committed presence.changes.
    assert stack.daemons[0].stop() == 0
    out = stack.verify("--set", "presence.ttl_ms=3000", "--set", "lock.ttl_ms=60000")
    assert out.returncode == 0 and "EQUAL: 0 differences" in out.stdout, out.stdout + out.stderr

    # A stored state that does not decode is a failure that may pass (an
    # operator can repair the key): the entity's records go through the
    # retry topic (1 s, 3 s, 9 s), later records of the entity follow them
    # in order, and the DLQ comes only after the last attempt. Nothing
    # overwrites the key meanwhile.
    v1_key, r1_key = f"presence:{{{tenant}:order:V1}}:state", f"presence:{{{tenant}:order:R1}}:state"
    redis(stack, "HSET", v1_key, "blob", "{corrupt")
    redis(stack, "HSET", r1_key, "blob", "{corrupt", "wm", "-1,-1,-1,-1")
    static = ["--set", "kafka.group.instance.id=p2", "--set", "kafka.session.timeout.ms=6000"]
    p2 = stack.start_processor(*static, name="processor-2", instance="p2")
    t0 = time.time()
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="V1",
         write_id="w9", version=9, ts=now + 1)
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="R1",
         write_id="r1", version=5, ts=now + 1)
    send("core.entities.lifecycle.mutated", "lifecycle", type="MUTATED", entity="order", id="R1",
         write_id="r2", version=6, ts=now + 2)
    prod.flush(10)

    def consume(topic, key, n, timeout):
        c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("rd-"),
                      "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
        c.subscribe([stack.topic(topic)])
        out, deadline = [], time.time() + timeout
        while len(out) < n and time.time() < deadline:
            m = c.poll(0.2)
            if m is not None and not m.error() and m.key().decode() == key:
                out.append({k: v.decode() for k, v in m.headers()})
        c.close()
        return out

    # R1: both records in the retry topic (the first failed, the second
    # follows it); then an operator repairs the key and both apply, once,
    # in order
    retried = consume("core.entities.lifecycle.mutated.retry", f"{tenant}:order:R1", 2, 30)
    assert [h["px.attempt"] for h in retried] == ["1", "0"], retried
    assert [h["px.seq"] for h in retried] == ["0", "1"], retried
    assert "does not decode" in retried[0]["px.error"] and "follows" in retried[1]["px.error"], retried
    assert retried[0]["px.topic"] == stack.topic("core.entities.lifecycle.mutated"), retried
    assert int(retried[0]["px.due"]) >= int(retried[0]["px.timestamp"]) + 1000, retried
    assert redis(stack, "HGET", r1_key, "blob") == "{corrupt"  # never overwritten
    # a crash while they wait: the next instance rebuilds R1's order from
    # the retry topic (the scan at assignment)
    p2.proc.send_signal(signal.SIGKILL)
    p2.proc.wait()
    stack.retire(p2)
    stack.start_processor(*static, name="processor-3", instance="p2")
    time.sleep(3)
    redis(stack, "DEL", r1_key)
    got = stack.changes(tenant, timeout=40,
                        until=lambda cs: sum(c["id"] == "R1" and c["type"] == "VERSION_BUMPED" for c in cs) >= 2)
    r1 = [(c["type"], c["version"]) for c in got if c["id"] == "R1"]
    assert r1 == [("STALE_CLEARED", None), ("VERSION_BUMPED", 5), ("STALE_CLEARED", None),
                  ("VERSION_BUMPED", 6)] or r1 == [("VERSION_BUMPED", 5), ("VERSION_BUMPED", 6)], r1
    assert view(stack, f"{tenant}:order:R1")["version"] == 6

    # V1 stays broken: the DLQ after the third retry (1 + 3 + 9 s), with the
    # original coordinates
    dead = consume("core.entities.lifecycle.mutated.dlt", f"{tenant}:order:V1", 1, 40)
    assert dead, "no DLQ record for the poisoned entity"
    assert time.time() - t0 >= 13, "the DLQ came before the three retries"
    assert "does not decode" in dead[0]["px.error"] and dead[0]["px.attempt"] == "3", dead
    assert dead[0]["px.topic"] == stack.topic("core.entities.lifecycle.mutated"), dead
    assert redis(stack, "HGET", v1_key, "blob") == "{corrupt"
    # nothing of R1 was dead-lettered, and it was applied once
    assert not consume("core.entities.lifecycle.mutated.dlt", f"{tenant}:order:R1", 1, 3)
    final = stack.changes(tenant, timeout=5)
    assert sum(c["id"] == "R1" and c["type"] == "VERSION_BUMPED" for c in final) == 2, final

    # The redis_presence_* gauges count what the folded states hold, kept up
    # by every fold (no scan per scrape). G1 (event time 10 minutes ahead, so
    # nothing expires during the test): gu1 with two tabs and a lock, gu2
    # with one tab, gu3..gu5 with three tabs each (12 tabs: the counting of
    # distinct users switches from pairwise to a hash set past 8), an open
    # write. Everything else has expired or closed by now (R1 holds a
    # version only, V1 is poisoned).
    g = dict(entity="order", id="G1")
    future = now + 600000
    many = [("g1", "gu1"), ("g2", "gu1"), ("g3", "gu2")] + [(f"h{u}{k}", f"gu{u}") for u in (3, 4, 5) for k in range(3)]
    for tab, user in many:
        send("presence.heartbeats", "presence", type="SUB", tab_id=tab, user_id=user, user_name=user,
             mode="VIEW", status="ONLINE", dirty=False, ts=future, **g)
    send("presence.locks", "lock", type="LOCK", field="f", tab_id="g1", user_id="gu1", user_name="gu1",
         request_id="g", ts=future, **g)
    send("core.entities.lifecycle.mutating", "lifecycle", type="MUTATING", write_id="gw", busy_by="job",
         ts=future, **g)
    prod.flush(10)

    def gauges():
        body = stack.http("/metrics", stack.proc_port)[1]
        return {n: float(line.split()[1]) for line in body.splitlines()
                for n in ("redis_presence_active_users", "redis_presence_active_tabs",
                          "redis_presence_active_locks", "redis_presence_stale_entities")
                if line.startswith(n + " ")}
    def wait_gauges(want):
        deadline = time.time() + 20
        while gauges() != want and time.time() < deadline:
            time.sleep(0.2)
        assert gauges() == want, gauges()

    want = {"redis_presence_active_users": 5, "redis_presence_active_tabs": 12,
            "redis_presence_active_locks": 1, "redis_presence_stale_entities": 1}
    wait_gauges(want)
    # the UNSUB of gu2's only tab takes one user and one tab away
    send("presence.heartbeats", "presence", type="UNSUB", tab_id="g3", user_id="gu2", user_name="gu2",
         mode="VIEW", status="ONLINE", dirty=False, ts=future + 1, **g)
    prod.flush(10)
    want.update(redis_presence_active_users=4, redis_presence_active_tabs=11)
    wait_gauges(want)
    # G2, a small entity (the pairwise count): two users over three tabs
    for tab, user in (("k1", "ku1"), ("k2", "ku1"), ("k3", "ku2")):
        send("presence.heartbeats", "presence", type="SUB", tab_id=tab, user_id=user, user_name=user,
             mode="VIEW", status="ONLINE", dirty=False, ts=future, entity="order", id="G2")
    prod.flush(10)
    want.update(redis_presence_active_users=6, redis_presence_active_tabs=14)
    wait_gauges(want)

    # --- bursts: writes built while a commit is in flight ----------------
    # Rounds of heartbeats over 700 entities (more than two chunks of the
    # write pipeline, pr_redis.c), each round in one burst, so batches of
    # hundreds of entities are committed back to back and their writes go
    # through the writer's snapshots. A single instance never meets a newer
    # state in Redis: every write must apply (a snapshot once read its
    # deadline commands' replies as entity writes and counted a ZREM's 0 as
    # a skipped write).
    def metric(name):
        body = stack.http("/metrics", stack.proc_port)[1]
        return sum(float(line.split()[1]) for line in body.splitlines() if line.startswith(name + " "))
    ids = [f"B{i}" for i in range(700)]
    for rnd in range(6):
        for i in ids:
            send("presence.heartbeats", "presence", type="SUB" if rnd == 0 else "HB", tab_id="bt", user_id="bu",
                 user_name="bu", mode="VIEW", status="AWAY" if rnd == 5 else "ONLINE", dirty=False,
                 ts=future + 10 + rnd, entity="order", id=i)
        prod.flush(10)
        time.sleep(0.05)
    keys = [f"presence:{{{tenant}:order:{i}}}:view" for i in ids]
    deadline = time.time() + 30
    while True:
        views = subprocess.run(["redis-cli", "-p", stack.env["REDIS_PORT"], "MGET", *keys], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        away = sum(1 for v in views if v and json.loads(v)["tabs"] and json.loads(v)["tabs"][0]["status"] == "away")
        if away == len(ids) or time.time() > deadline:
            break
        time.sleep(0.2)
    assert away == len(ids), f"{away} of {len(ids)} views show the last round"
    assert metric("presence_processor_writes_skipped_total") == 0, "a single instance's write was skipped"

    # --- the loop's guard: a loop thread that never comes back ------------
    # An instance of its own (its own group and topics, so the one above is
    # left alone) whose loop thread blocks for good 2 s after start, as in a
    # library call that never returns: its ops endpoint (a thread of its
    # own) still answers, /readyz within a second, not-ready with the step
    # the loop is in once it has been away for 5 s; a SIGTERM is not
    # served, and the guard ends the process with exit 1 once the loop has
    # been away for processor.stall_exit_ms, naming the step it was in.
    other = pxtest.unique("hung")
    ops = pxtest.free_port()
    hung = stack.start_processor("--set", f"kafka.group.id={other}", "--set", f"topic.prefix={other}.",
                                 "--set", "fault.hang_loop_ms=2000", "--set", "processor.stall_exit_ms=10000",
                                 "--set", f"ops.port={ops}", name="processor-hung", instance="hung")
    t0 = time.monotonic()
    answers = []  # (seconds since start, seconds to answer, status, body)
    while time.monotonic() - t0 < 20 and hung.proc.poll() is None:
        t = time.monotonic()
        try:
            status, body = stack.http("/readyz", ops)
        except OSError as e:
            status, body = None, str(e)
        answers.append((t - t0, time.monotonic() - t, status, body.strip()))
        if status == 503 and "blocked=" in body:
            break
        time.sleep(0.2)
    blocked = [a for a in answers if a[2] == 503 and "blocked=" in a[3]]
    assert blocked, f"/readyz never said the loop was blocked: {answers[-5:]}"
    assert 'step="fault.hang_loop_ms (testing only)"' in blocked[0][3], blocked[0]
    assert all(a[1] < 1 for a in answers if a[2] is not None), f"/readyz answered slowly: {answers}"
    deadline = time.monotonic() + 3  # the guard looks every 0.2 s
    while True:
        status, body = stack.http("/metrics", ops)
        if (status == 200 and "presence_processor_loop_blocked_total 1" in body) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and "presence_processor_loop_blocked_total 1" in body, body[-2000:]
    assert "presence_processor_ready 0" in body, body[-2000:]
    print(f"hung processor's /readyz at {blocked[0][0]:.1f} s, in {blocked[0][1] * 1000:.0f} ms: {blocked[0][3]}")
    hung.proc.send_signal(signal.SIGTERM)
    rc = hung.proc.wait(60)
    took = time.monotonic() - t0
    stack.retire(hung)
    with open(hung.log_path, errors="replace") as f:
        text = f.read()
    assert rc == 1, f"a processor whose loop thread hung exited {rc}:\n{text[-3000:]}"
    assert "the loop thread has not come back" in text and "fault.hang_loop_ms (testing only)" in text, text[-3000:]
    assert "the loop thread is blocked" in text, text[-3000:]
    assert "stop requested" not in text, "the SIGTERM was served by a loop that was meant to be stuck"
    assert 10 <= took < 40, f"the guard ended the hung processor {took:.1f} s after its start"

if __name__ == "__main__":
    pxtest.run(test, "test_processor")
