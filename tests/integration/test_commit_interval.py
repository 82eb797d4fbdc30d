#!/usr/bin/python3
"""batch.commit_interval_ms against a real broker and Redis: a trickle of
live records (one every 40 ms for 3 s) makes one transaction per record
without it (a commit takes a few ms here), and at most one per interval
with it; every record is still folded, every lock decided early (the
LOCK_GRANTED arrives on the entity's channel before the commit), and the
view holds every tab."""
import json
import subprocess
import time

import pxavro
import pxtest


def run(stack, tenant, interval_ms, entity_id):
    codec = pxavro.Codec()
    d = stack.start_processor("--set", f"batch.commit_interval_ms={interval_ms}")
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if stack.http("/readyz", stack.proc_port)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.2)

    def metric(name):
        body = stack.http("/metrics", stack.proc_port)[1]
        return sum(float(line.split()[1]) for line in body.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    sub = pxtest.Subscriber(stack.env["REDIS_PORT"], f"presence:updates:{{{tenant}:order:{entity_id}}}")
    prod = stack.producer()
    now = int(time.time() * 1000)
    key = f"{tenant}:order:{entity_id}"
    batches0 = metric("presence_processor_batches_total")
    folded0 = metric("presence_processor_records_total")
    n = 75
    t0 = time.time()
    for i in range(n):
        v = dict(tenant=tenant, entity="order", id=entity_id, ts=now + i, type="SUB", tab_id=f"t{i}",
                 user_id="u", user_name="U", mode="VIEW", status="ONLINE", dirty=False)
        prod.produce(stack.topic("presence.heartbeats"), key=key, value=codec.encode("presence", v))
        prod.flush(10)
        time.sleep(0.04)
    lock = dict(tenant=tenant, entity="order", id=entity_id, ts=now + n, type="LOCK", field="f", tab_id="t0",
                user_id="u", user_name="U", request_id=f"r{interval_ms}")
    prod.produce(stack.topic("presence.locks"), key=key, value=codec.encode("lock", lock))
    prod.flush(10)
    elapsed = time.time() - t0
    deadline = time.time() + 30
    while metric("presence_processor_records_total") < folded0 + n + 1 and time.time() < deadline:
        time.sleep(0.1)
    assert metric("presence_processor_records_total") >= folded0 + n + 1, "the trickle was not folded"
    time.sleep(1.5)  # the last batch commits and is written
    batches = metric("presence_processor_batches_total") - batches0
    view = json.loads(subprocess.run(["redis-cli", "-p", stack.env["REDIS_PORT"], "GET", f"presence:{{{key}}}:view"],
                                     capture_output=True, text=True, check=True).stdout)
    assert len(view["tabs"]) == n, view
    assert [lk["field"] for lk in view["locks"]] == ["f"], view
    # the decision came first in the early form, before the write's own
    msgs = sub.wait(lambda ms: any(isinstance(json.loads(raw), dict) for _, raw in ms), what="an early decision")
    kinds = [json.loads(raw) for _, raw in msgs]
    first = next(i for i, doc in enumerate(kinds) if isinstance(doc, dict))
    assert [c["type"] for c in kinds[first]["decided"]] == ["LOCK_GRANTED"], kinds[first]
    assert not any(isinstance(doc, list) and any(c.get("type") == "LOCK_GRANTED" for c in doc)
                   for doc in kinds[:first]), kinds[:first + 1]
    sub.close()
    d.stop()
    stack.retire(d)
    return batches, elapsed


async def test(stack):
    tenant = pxtest.unique("t")
    # 3+ s of records: without an interval, a transaction for every record
    # or two (those that arrive while a commit is in flight share the next)
    alone, t_alone = run(stack, tenant, 0, "A")
    assert alone >= 25, f"{alone} transactions for 76 records over {t_alone:.1f} s without an interval"
    # at most one per 400 ms: the span / 0.4 s, the first, the lock's, slack
    spaced, t_spaced = run(stack, tenant, 400, "B")
    bound = t_spaced / 0.4 + 3
    assert 1 <= spaced <= bound, f"{spaced} transactions for 76 records over {t_spaced:.1f} s at one per 400 ms"
    assert spaced < alone / 2, (spaced, alone)
    print(f"transactions: {alone:.0f} in {t_alone:.1f} s without an interval, "
          f"{spaced:.0f} in {t_spaced:.1f} s with 400 ms (bound {bound:.1f})")


if __name__ == "__main__":
    pxtest.run(test, "test_commit_interval")
