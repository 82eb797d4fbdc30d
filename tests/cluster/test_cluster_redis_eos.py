#!/usr/bin/python3
"""Exactly-once on a Redis Cluster (label cluster): the crash-equivalence
workload of test_eos on 3 masters + 3 replicas started by the fault
harness (pxcluster.py), with the stack fixture's Kafka. While records
flow, the processor is killed with SIGKILL again and again (a second
instance shares the group for part of the run), a master is killed with
SIGKILL and its replica promoted by the cluster (writes it had not
replicated are lost: the processor must see the promotion and repair from
the applied marks of every shard), and a slot holding entities of the
workload is migrated to another master. When the input is quiet, the
cluster's view (every master's keys, copied into one plain server for
presencectl) and the committed presence.changes must equal an offline fold
of the whole input log (presencectl verify: EQUAL)."""
import os
import random
import signal
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import pxcluster  # noqa: E402
import pxtest  # noqa: E402
import test_eos  # noqa: E402

SEED = int(os.environ.get("PX_EOS_SEED", "20261206"))
KILLS = int(os.environ.get("PX_CLUSTER_EOS_KILLS", "10"))


async def test(stack):
    rng = random.Random(SEED)
    stack.tenant = pxtest.unique("t")
    work = os.path.join(stack.build, "cluster", "redis-eos")  # not in the logs: a socket is not copied
    rc = pxcluster.RedisCluster(os.path.join(work, "cluster"), masters=3, replicas=1).start()
    single = pxcluster.RedisServer(os.path.join(work, "copy"))
    stack.env["REDIS_PORT"] = str(rc.masters()[0].port)
    common = test_eos.TTLS + ["--set", "redis.cluster=true", "--set", f"redis.nodes={rc.seeds()}",
                              "--set", "kafka.session.timeout.ms=6000", "--set", "kafka.heartbeat.interval.ms=1000",
                              "--set", "http.port=0"]
    started = [0]

    def start(instance):
        started[0] += 1
        return stack.start_processor(*common, "--set", f"kafka.group.instance.id={instance}",
                                     name=f"processor-{instance}-{started[0]:02d}", instance=instance)

    stop, counts = threading.Event(), {"produced": 0}
    producer = threading.Thread(target=test_eos.workload, args=(stack, stop, counts))
    producer.start()
    p1, p2 = start("p1"), None
    kills, master_killed, migrated = 0, None, None
    time.sleep(8)  # the first instance joins, commits and writes marks before the chaos starts
    try:
        while kills < KILLS:
            time.sleep(rng.uniform(2.0, 5.0))
            victim = p1 if p2 is None or rng.random() < 0.6 else p2
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait()
            stack.retire(victim)
            kills += 1
            if victim is p1:
                p1 = start("p1")
            else:
                p2 = start("p2") if kills < KILLS - 2 else None
            if kills == 2:
                p2 = p2 or start("p2")
            if kills == 3:
                # a master dies under running processors, which must see its
                # replica promoted in its place (no processor is killed
                # until then: one that starts after the promotion has
                # nothing in memory to lose and rightly sees no change)
                time.sleep(6)
                m = rc.master_of(pxcluster.key_slot(f"{{{stack.tenant}:order:e1}}"))
                rc.kill(m)
                waited = rc.wait_ok(timeout=40)
                master_killed = (m.port, waited)
                print(f"master {m.port} SIGKILLed: the cluster is ok again after {waited:.1f} s", flush=True)
                time.sleep(4)
            if kills == 6:  # a slot of the workload moves to another master mid-stream
                slot = pxcluster.key_slot(f"{{{stack.tenant}:order:e7}}")
                dst = next(n for n in rc.masters() if n.port != rc.master_of(slot).port)
                src = rc.migrate_slot(slot, dst)
                migrated = (slot, src.port, dst.port)
                print(f"slot {slot} migrated {src.port} -> {dst.port}", flush=True)
    finally:
        stop.set()
        producer.join()
    print(f"cluster eos: {kills} processor kills, {counts['produced']} records produced, seed {SEED}", flush=True)
    assert master_killed and migrated, "the run did not reach the master kill and the migration"

    def copy_out():
        single.start()
        n = rc.copy_to(single, "presence:*")
        per = {m.port: len(k) for m, k in rc.keys("presence:*").items()}
        print(f"copied {n} keys from the masters ({per}) for presencectl", flush=True)
        assert sum(1 for v in per.values() if v) == 3, f"the view is not spread over the 3 masters: {per}"
        stack.env["REDIS_PORT"] = str(single.port)

    test_eos.settle_and_verify(stack, prepare=copy_out)
    logs = [open(d.log_path, errors="replace").read() for d in stack.retired + stack.daemons]
    changed = sum(log.count("redis master changed") for log in logs)
    assert changed >= 1, "no processor saw the promoted replica as a changed master"
    repaired = sum(log.count('msg="repairing"') for log in logs)
    print(f"cluster eos: {changed} processors saw the promotion and repaired from the marks; "
          f"{repaired} gaps re-folded", flush=True)
    rc.stop()
    single.stop()


if __name__ == "__main__":
    pxtest.run(test, "test_cluster_redis_eos")
