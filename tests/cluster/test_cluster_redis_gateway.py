#!/usr/bin/python3
"""The gateway and the processor on a 3 + 3 Redis Cluster (the fault
harness's pxcluster.RedisCluster; Kafka from the integration fixture),
with real WebSocket clients:

- two users on two entities whose slots live on different masters see
  each other on both (reads routed to each slot's master, pushes through
  sharded pub/sub: SSUBSCRIBE on the owner, SPUBLISH by the processor);
- they race for one field on each entity: one LOCK_ACK success and one
  refusal naming the holder, per field;
- the master of one entity is SIGKILLed (its replica promoted by the
  cluster): pushes resume on both entities with no client reconnecting,
  a LOCK there gets its LOCK_ACK; the gap from the kill to the first
  push showing a change made after it is printed;
- CLUSTER FAILOVER of the other entity's master: the same, without a kill.

Usage: test_cluster_redis_gateway.py WORKDIR (ctest sets PX_STACK_DIR,
PX_BUILD_DIR and PX_SOURCE_DIR: the fixture's Kafka)
"""
import asyncio
import json
import os
import shutil
import sys
import time

import websockets

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pxcluster  # noqa: E402
import pxtest  # noqa: E402

WORKDIR = os.path.abspath(sys.argv[1])


def presence(pred):
    return lambda m: m.get("type") == "PRESENCE" and pred(m)


def two_ids_on_two_masters(rc, tenant):
    """Entity ids whose keys' slots ({tenant:order:id}) are owned by two
    different masters; returns [(id, master), (id, master)]."""
    found = {}
    for i in range(1000):
        oid = f"o{i}"
        slot = int(rc.cli(rc.masters()[0], "CLUSTER", "KEYSLOT", f"{{{tenant}:order:{oid}}}"))
        m = rc.master_of(slot)
        if m.port not in found:
            found[m.port] = (oid, m)
        if len(found) == 2:
            return list(found.values())
    raise AssertionError("no two masters found")


async def race(a, b, oid, field, rid):
    """a and b LOCK oid's field at once: exactly one wins, the other is
    told who holds it. Returns the winner's name."""
    lock = json.dumps({"type": "LOCK", "entity": "order", "id": oid, "field": field, "request_id": rid})
    await asyncio.gather(a.send(lock), b.send(lock))
    acks = await asyncio.gather(*[pxtest.recv_until(ws, lambda m: m.get("type") in ("LOCK_ACK", "ERROR")
                                                    and m.get("request_id") == rid, timeout=30,
                                                    what=f"LOCK_ACK {rid}") for ws in (a, b)])
    for m in acks:
        assert m["type"] == "LOCK_ACK", m
    wins = [m for m in acks if m["success"]]
    assert len(wins) == 1, acks
    winner = "alice" if acks[0]["success"] else "bob"
    loser = acks[1] if acks[0]["success"] else acks[0]
    assert loser["holder"]["id"] == winner and loser["token"] is None, acks
    assert isinstance(wins[0]["token"], int), acks
    return winner


async def sub(ws, oid, tab):
    await ws.send(json.dumps({"type": "SUB", "entity": "order", "id": oid, "tab_id": tab}))


async def see_both(ws, oids):
    """PRESENCEs of every one of oids showing both users (in any order)."""
    left = set(oids)

    def pred(m):
        if m.get("type") == "PRESENCE" and sorted(m["users"]) == ["alice", "bob"]:
            left.discard(m["id"])
        return not left
    await pxtest.recv_until(ws, pred, timeout=30, what=f"PRESENCE of {sorted(oids)} with both")


async def after_fault(rc, alice, bob, oid, what, t_fault, field):
    """After a fault on oid's master: bob's next change shows in alice's
    PRESENCE (same connections), and a LOCK there is decided. Returns the
    seconds from the fault to that PRESENCE."""
    mode = "edit"
    deadline = time.monotonic() + 45
    got = None
    # bob keeps changing his tab (mode view/edit) until alice sees a change
    # made after the fault: a HB folded while the master was down is
    # retried by the processor, so one of them lands.
    while time.monotonic() < deadline and got is None:
        mode = "view" if mode == "edit" else "edit"
        await bob.send(json.dumps({"type": "HB", "entity": "order", "id": oid, "mode": mode}))
        try:
            got = await pxtest.recv_until(
                alice, presence(lambda m, mode=mode: m["id"] == oid and any(
                    v["id"] == "bob" and v["mode"] == mode for v in m["viewers"])), timeout=1.0,
                what=f"bob's mode {mode} on {oid}")
        except AssertionError:
            pass
    assert got is not None, f"{what}: no push on {oid} within 45 s"
    gap = time.monotonic() - t_fault
    winner = await race(alice, bob, oid, field, f"r-{field}")
    gap_ack = time.monotonic() - t_fault
    print(f"{what}: first push {gap:.2f} s, LOCK_ACKs {gap_ack:.2f} s after the fault; {field} went to {winner}",
          flush=True)
    return gap, gap_ack


async def test(stack, rc):
    tenant = pxtest.unique("t")
    (oid_a, master_a), (oid_b, master_b) = two_ids_on_two_masters(rc, tenant)
    print(f"{oid_a} on {master_a}, {oid_b} on {master_b}", flush=True)
    cl = ["--set", "redis.cluster=true", "--set", f"redis.nodes={rc.seeds()}"]
    stack.start_processor(*cl)
    stack.start_gateway(*cl, "--set", "limits.lock_timeout_ms=15000", "--set", "limits.idle_ping_s=0")
    stack.wait_ready()

    alice = await websockets.connect(stack.ws_url(pxtest.token("alice", tenant, "Alice")))
    bob = await websockets.connect(stack.ws_url(pxtest.token("bob", tenant, "Bob")))
    for oid in (oid_a, oid_b):
        await sub(alice, oid, "ta")
        await sub(bob, oid, "tb")
    await see_both(alice, (oid_a, oid_b))
    await see_both(bob, (oid_a, oid_b))
    for oid, field in ((oid_a, "amount"), (oid_b, "note")):
        winner = await race(alice, bob, oid, field, f"r0-{field}")
        print(f"{oid}: {field} went to {winner}", flush=True)

    # the master of oid_b SIGKILLed: its replica is promoted by the cluster
    t_kill = time.monotonic()
    rc.kill(master_b)
    gap_kill = await after_fault(rc, alice, bob, oid_b, "master SIGKILL", t_kill, "status")
    await after_fault(rc, alice, bob, oid_a, "then the untouched master", time.monotonic(), "qty")

    # CLUSTER FAILOVER of oid_a's master: no kill, the replica takes over
    replica = rc.replicas_of(master_a)[0]
    t_fo = time.monotonic()
    rc.failover(replica)
    gap_fo = await after_fault(rc, alice, bob, oid_a, "CLUSTER FAILOVER", t_fo, "due")
    m = stack.http("/metrics")[1]
    print(f"gaps: SIGKILL push {gap_kill[0]:.2f} ack {gap_kill[1]:.2f} "
          f"FAILOVER push {gap_fo[0]:.2f} ack {gap_fo[1]:.2f}", flush=True)
    assert "presence_gateway" in m
    await alice.close()
    await bob.close()


def main():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    rc = pxcluster.RedisCluster(WORKDIR).start()
    try:
        pxtest.run(lambda stack: test(stack, rc), "test_cluster_redis_gateway")
    finally:
        rc.stop()


if __name__ == "__main__":
    main()
