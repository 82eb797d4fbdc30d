#!/usr/bin/python3
"""The example analytics consumer (tools/analytics/concurrent_editors.py)
on change events the real processor produced: lock records with event
times spread over three minutes go through the processor; the consumer
(python3-confluent-kafka + python3-avro, an Avro implementation independent
of the C codec, checking each record's fingerprint) must print exactly the
expected concurrent editors per entity per minute."""
import json
import os
import subprocess
import time

import pxavro
import pxtest


async def test(stack):
    codec = pxavro.Codec()
    tenant = pxtest.unique("t")
    stack.start_processor("--set", "lock.ttl_ms=86400000", "--set", "http.port=0")
    prod = stack.producer()
    m0 = (int(time.time() * 1000) // 60000 - 4) * 60000  # four minutes ago, on a minute boundary

    def lock(eid, t, typ, user, field):
        v = dict(tenant=tenant, entity="order", id=eid, ts=m0 + t, type=typ, field=field, tab_id=f"tab-{user}",
                 user_id=user, user_name=user.title(), request_id=f"r{t}")
        prod.produce(stack.topic("presence.locks"), key=f"{tenant}:order:{eid}", value=codec.encode("lock", v))

    lock("X", 10000, "LOCK", "alice", "amount")    # minute 0: alice
    lock("X", 20000, "LOCK", "bob", "notes")       # minute 0: alice + bob = 2
    lock("X", 25000, "LOCK", "carol", "amount")    # denied: changes nothing
    lock("X", 30000, "LOCK", "alice", "date")      # alice holds two fields: still 2 users
    lock("X", 65000, "UNLOCK", "alice", "amount")  # minute 1: alice still holds date
    lock("X", 70000, "UNLOCK", "alice", "date")    # minute 1: peak was 2
    lock("X", 150000, "UNLOCK", "bob", "notes")    # minute 2: bob until here
    lock("Y", 30000, "LOCK", "dave", "total")      # held to the end: minutes 0, 1, 2
    prod.flush(10)
    changes = stack.changes(tenant, timeout=60, until=lambda ch: len(ch) >= 8)
    assert len(changes) == 8, changes

    script = os.path.join(os.environ["PX_SOURCE_DIR"], "tools", "analytics", "concurrent_editors.py")
    r = subprocess.run(["/usr/bin/python3", script, "--bootstrap", stack.env["KAFKA_BOOTSTRAP"], "--topic",
                        stack.topic("presence.changes"), "--json"], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    got = [(row["minute_ms"] - m0, row["entity"], row["peak"], row["editors"]) for row in rows]
    X, Y = f"{tenant}:order:X", f"{tenant}:order:Y"
    assert got == [(0, X, 2, ["alice", "bob"]), (60000, X, 2, ["alice", "bob"]), (120000, X, 1, ["bob"]),
                   (0, Y, 1, ["dave"]), (60000, Y, 1, ["dave"]), (120000, Y, 1, ["dave"])], got
    assert "8 changes, 6 rows" in r.stderr, r.stderr

    csv_out = subprocess.run(["/usr/bin/python3", script, "--bootstrap", stack.env["KAFKA_BOOTSTRAP"], "--topic",
                              stack.topic("presence.changes")], capture_output=True, text=True, timeout=90).stdout
    lines = csv_out.splitlines()
    assert lines[0] == "minute,entity,peak,editors" and lines[1].endswith(f",{X},2,alice;bob"), lines


if __name__ == "__main__":
    pxtest.run(test, "test_analytics")
