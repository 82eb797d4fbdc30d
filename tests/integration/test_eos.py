#!/usr/bin/python3
"""Exactly-once under crashes (label eos): the proof of docs/exactly-once.md.

A random workload (every record kind and type, Avro and JSON lifecycle
records, a few poison records) over a few hundred entities is produced while
the processor is killed with SIGKILL at random moments, at least 20 times; a
second instance shares the group for part of the run; Redis (this test's own
server, no persistence) is killed and restarted once, losing its data. When
the input is quiet and the last processor has committed everything, the
Redis view and the committed presence.changes must equal an offline fold of
the whole input log, record for record (presencectl verify)."""
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

import pxavro
import pxtest

SEED = int(os.environ.get("PX_EOS_SEED", "20261122"))
KILLS = int(os.environ.get("PX_EOS_KILLS", "22"))
BATCH = os.environ.get("PX_EOS_BATCH")  # e.g. 40: many small batches
EXTRA = os.environ.get("PX_EOS_SET", "").split()  # more processor settings, e.g. "batch.flush_defer_ms=0"
# every fourth kill leaves a zombie first: the replacement starts under the
# same name while the victim still runs, which fences the victim's
# transactional producers and its static group membership
ZOMBIES = os.environ.get("PX_EOS_ZOMBIES") == "1"
TTLS = ["--set", "presence.ttl_ms=2000", "--set", "lock.ttl_ms=3000", "--set", "stale.ttl_ms=4000"]


def workload(stack, stop, counts):
    rng = random.Random(SEED)
    codec = pxavro.Codec()
    prod = stack.producer()
    tenant = stack.tenant
    users = [f"u{i}" for i in range(12)]
    fields = ["amount", "customer", "notes", "date"]
    tabs = {}  # entity id -> list of (tab, user)
    while not stop.is_set():
        eid = f"e{rng.randrange(300)}"
        key = f"{tenant}:order:{eid}"
        now = int(time.time() * 1000)
        base = {"tenant": tenant, "entity": "order", "id": eid, "ts": now}
        r = rng.random()
        live = tabs.setdefault(eid, [])
        if r < 0.45:
            if live and rng.random() < 0.8:
                tab, user = rng.choice(live)
                kind = rng.choice(["HB", "HB", "HB", "UNSUB"])
                if kind == "UNSUB":
                    live.remove((tab, user))
            else:
                tab, user = f"t{rng.randrange(10**6)}", rng.choice(users)
                live.append((tab, user))
                kind = "SUB"
            v = dict(base, type=kind, tab_id=tab, user_id=user, user_name=user.upper(),
                     mode=rng.choice(["VIEW", "EDIT"]), status=rng.choice(["ONLINE", "AWAY"]),
                     dirty=rng.random() < 0.3, field=rng.choice(fields + [None]))
            topic, val = "presence.heartbeats", codec.encode("presence", v)
        elif r < 0.75:
            tab, user = rng.choice(live) if live and rng.random() < 0.9 else (f"t{rng.randrange(99)}", rng.choice(users))
            v = dict(base, type=rng.choice(["LOCK", "LOCK", "UNLOCK"]), field=rng.choice(fields), tab_id=tab,
                     user_id=user, user_name=user.upper(), request_id=f"r{rng.randrange(10**9)}")
            topic, val = "presence.locks", codec.encode("lock", v)
        elif r < 0.97:
            wid = f"w{rng.randrange(40)}" if rng.random() < 0.8 else None
            mutating = rng.random() < 0.5
            topic = "core.entities.lifecycle." + ("mutating" if mutating else "mutated")
            v = dict(base, type="MUTATING" if mutating else "MUTATED", write_id=wid)
            if mutating:
                v["busy_by"] = rng.choice(["erp", "import", "api"])
            elif rng.random() < 0.5:
                v["version"] = rng.randrange(1, 50)
            if rng.random() < 0.3:  # the JSON form
                val = json.dumps({k: x for k, x in v.items() if x is not None}).encode()
            else:
                val = codec.encode("lifecycle", v)
        else:
            topic, val = rng.choice(["presence.heartbeats", "presence.locks"]), b"\x01poison" + bytes([rng.randrange(256)])
        for _ in range(100):
            try:
                prod.produce(stack.topic(topic), key=key, value=val)
                break
            except BufferError:
                prod.poll(0.05)
        counts["produced"] += 1
        prod.poll(0)
        time.sleep(rng.expovariate(400))
    prod.flush(30)


def fold_workload(stack, seconds, *extra):
    """The processor (TTLS and extra settings) folds `seconds` of the
    workload into a Redis of the test's own, then everything settles and
    verify is EQUAL (settle_and_verify). Returns (that Redis, records
    produced, the workload's start as epoch ms)."""
    stack.tenant = pxtest.unique("t")
    live = pxtest.Redis(stack.logdir)
    stack.env["REDIS_PORT"] = str(live.port)
    stack.start_processor(*TTLS, "--set", "http.port=0", *extra)
    stop, counts = threading.Event(), {"produced": 0}
    producer = threading.Thread(target=workload, args=(stack, stop, counts))
    t0 = int(time.time() * 1000)
    producer.start()
    time.sleep(seconds)
    stop.set()
    producer.join()
    settle_and_verify(stack)
    return live, counts["produced"], t0


def settle_and_verify(stack, prepare=None, ttls=TTLS):
    """Let deadlines run out (no more EXPIREs) and the group catch up, stop
    the processors, call prepare() (if given), and require presencectl
    verify (the processors' TTL settings, ttls) to find everything equal."""
    deadline = time.time() + 120
    left = None
    while time.time() < deadline:
        time.sleep(2)
        left = pxtest.lag(stack)
        if left == 0:
            time.sleep(6)  # all TTLs (<= 4 s) passed: any EXPIRE is produced by now
            if pxtest.lag(stack) == 0:
                break
    assert left == 0, f"the group did not catch up: {left} records left"
    for d in stack.daemons:
        if d.proc.poll() is None:
            assert d.stop() == 0, f"{d.name} did not stop cleanly"
    if prepare:
        prepare()
    out = stack.verify(*ttls)
    with open(os.path.join(stack.logdir, "verify.txt"), "w") as f:
        f.write(out.stdout + out.stderr)
    print(out.stdout[-3000:])
    assert out.returncode == 0 and "EQUAL: 0 differences" in out.stdout, out.stdout[-5000:] + out.stderr


async def test(stack):
    rng = random.Random(SEED + 1)
    stack.tenant = pxtest.unique("t")
    redis = pxtest.Redis(stack.logdir)
    stack.env["REDIS_PORT"] = str(redis.port)
    common = TTLS + ["--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=1000",
                     "--set", "http.port=0"] + (["--set", f"batch.max_records={BATCH}"] if BATCH else [])
    for kv in EXTRA:
        common += ["--set", kv]

    started = [0]

    def start(instance):
        started[0] += 1
        return stack.start_processor(*common, "--set", f"kafka.group.instance.id={instance}",
                                     name=f"processor-{instance}-{started[0]:02d}", instance=instance)

    zombies, fenced = [0], [0]
    stop, counts = threading.Event(), {"produced": 0}
    producer = threading.Thread(target=workload, args=(stack, stop, counts))
    producer.start()
    p1 = start("p1")
    p2 = None
    kills = 0
    try:
        while kills < KILLS:
            time.sleep(rng.uniform(0.3, 2.5))
            victim = p1 if p2 is None or rng.random() < 0.6 else p2
            name = "p1" if victim is p1 else "p2"
            successor = None
            if ZOMBIES and kills % 4 == 3 and (name == "p1" or kills + 1 < KILLS * 2 // 3):
                successor = start(name)  # the victim is a zombie from here on
                time.sleep(rng.uniform(1.0, 3.0))
                zombies[0] += 1
                if victim.proc.poll() is not None:
                    fenced[0] += 1  # it found out by itself, and stopped
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            stack.retire(victim)
            kills += 1
            if victim is p1:
                p1 = successor or start("p1")
            else:
                # p2 leaves for good late in the run
                p2 = successor or (start("p2") if kills < KILLS * 2 // 3 else None)
            if kills == 4 and p2 is None:
                p2 = start("p2")  # a second instance shares the group from here
            if kills == KILLS // 2:
                redis.kill()  # Redis loses everything...
                time.sleep(2)
                redis.start()  # ...and comes back empty
    finally:
        stop.set()
        producer.join()
    print(f"eos: {kills} kills, {counts['produced']} records produced, seed {SEED}"
          + (f", {zombies[0]} zombies ({fenced[0]} stopped by themselves)" if ZOMBIES else ""))

    settle_and_verify(stack)
    redis.kill()
    if BATCH and int(BATCH) <= 1000 and not any("flush_defer_ms=0" in kv for kv in EXTRA):
        # with small batches the instances start behind after each kill, so
        # deferred writes (batch.flush_defer_ms, on by default) were part of
        # what verify just proved
        deferred = [d.name for d in stack.retired + stack.daemons
                    if "Redis writes deferred" in open(d.log_path, errors="replace").read()]
        assert deferred, "no instance deferred its Redis writes: the test did not exercise them"
        print(f"eos: {len(deferred)} instances deferred Redis writes while behind")
    if ZOMBIES:
        assert zombies[0] >= 4, f"only {zombies[0]} zombies: the test did not exercise them"
        logs = [open(d.log_path, errors="replace").read() for d in stack.retired]
        fenced_logs = sum(1 for log in logs if "FENCED" in log or "fenced" in log)
        assert fenced_logs >= 1, "no zombie saw itself fenced: the test did not exercise fencing"
        print(f"eos: {fenced_logs} retired instances logged their fencing")
    if any(kv.startswith("fault.abort_every=") for kv in EXTRA):
        # injected commit failures: verify just proved that a failed
        # transaction, and the open batch folded on top of it, were rewound
        # and folded again exactly once; check that both happened
        logs = [open(d.log_path, errors="replace").read() for d in stack.retired + stack.daemons]
        injected = sum(log.count("injected by fault.abort_every") for log in logs)
        dropped = sum(log.count("batch dropped: the transaction it was folded on failed") for log in logs)
        assert injected >= 5, f"only {injected} injected commit failures: the test did not exercise them"
        assert dropped >= 1, "no open batch was dropped with a failed transaction below it"
        print(f"eos: {injected} injected commit failures, {dropped} open batches dropped with them")


if __name__ == "__main__":
    pxtest.run(test, "test_eos" + (f"_batch{BATCH}" if BATCH else "") + ("_set" if EXTRA else ""))
