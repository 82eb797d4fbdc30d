#!/usr/bin/python3
"""A Redis failover that loses acknowledged writes is detected and repaired
by the processor; a reconnect with the data intact is not a loss.

The processor finds its Redis through 3 Sentinels (pxcluster.RedisSentinel:
a master and one replica) and folds test_eos's randomized workload:

1. Reconnect, data intact: CLIENT KILL TYPE normal on the master drops the
   processor's connections; it reconnects to the same master (new client
   ids) and repairs nothing (presence_processor_repaired_total unchanged,
   no master change logged).
2. Loss, made on purpose: the replica is detached (REPLICAOF NO ONE, under
   a renamed command the Sentinels cannot undo), more of the workload is
   folded into the master, and presencectl verify shows the master EQUAL
   and the detached replica DIFFERENT: it lacks acknowledged writes. The
   master is SIGKILLed and the Sentinels promote that replica.
3. The processor, running throughout, meets the failover at its next
   Redis command (more records come), follows the Sentinels to the
   promoted replica, sees a new master and repairs from the applied marks:
   verify through the Sentinels becomes EQUAL without a manual replay, and
   stays EQUAL after the processor stops.

Usage: test_redis_failover_loss.py (ctest: the `stack` fixture's environment)
"""
import os
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import ctltest  # noqa: E402
import pxcluster  # noqa: E402
import pxtest  # noqa: E402
import test_eos  # noqa: E402

TTLS = test_eos.TTLS
CHANGED = re.compile(r"redis master changed|redis may have lost writes")


def produce(stack, seconds):
    """test_eos's workload for `seconds`; returns the records produced."""
    stop, counts = threading.Event(), {"produced": 0}
    t = threading.Thread(target=test_eos.workload, args=(stack, stop, counts))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return counts["produced"]


def quiet(stack, timeout=90):
    """Until the group has committed every input record and, the longest
    TTL later, still has (the EXPIREs it produced meanwhile included)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pxtest.lag(stack) == 0:
            time.sleep(5)  # every TTL (<= 4 s) ran out: its EXPIRE is in the log by now
            if pxtest.lag(stack) == 0:
                return
        time.sleep(1)
    raise AssertionError(f"the processor did not catch up within {timeout}s")


def repaired(stack):
    """presence_processor_repaired_total from the processor's /metrics."""
    status, body = stack.http("/metrics", stack.proc_port)
    assert status == 200, (status, body[:300])
    m = re.search(r"^presence_processor_repaired_total(?:\{[^}]*\})? (\d+)", body, re.M)
    assert m, body[:2000]
    return int(m.group(1))


def log_since(daemon, offset):
    daemon.log.flush()
    with open(daemon.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode(errors="replace")


def clients(server):
    """Ids of the processor's connections: the normal clients that are no
    Sentinel's (named sentinel-...) and not this redis-cli."""
    ids = set()
    for line in server.cli("CLIENT", "LIST", "TYPE", "normal").splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        if not f.get("name", "").startswith("sentinel-") and f.get("cmd") != "client|list":
            ids.add(f["id"])
    return ids


def verify(stack, *sets, check=None):
    return ctltest.ctl(stack, "verify", *TTLS, *sets, check=check)


async def test(stack):
    stack.tenant = pxtest.unique("t")
    # (servers' files outside the test's log dir: their Unix sockets do not copy)
    workdir = os.path.join(stack.build, "cluster", "failover-loss")
    st = pxcluster.RedisSentinel(workdir, replicas=1, sentinels=3, detachable=True)
    print(f"master + replica + 3 Sentinels ready in {st.start():.1f} s", flush=True)
    master, replica = st.master(), st.replicas()[0]
    via_sentinels = ["--set", f"redis.sentinels={st.sentinels}", "--set", f"redis.master_name={st.name}"]
    proc = stack.start_processor(*TTLS, *via_sentinels)
    n = produce(stack, 3)
    quiet(stack)
    print(f"{n} records folded through the master {master.addr}", flush=True)

    # 1. The processor's connections killed, the data intact: no repair.
    before_ids = clients(master)
    assert before_ids, master.cli("CLIENT", "LIST")
    rep0, mark = repaired(stack), os.path.getsize(proc.log_path)
    killed = int(master.cli("CLIENT", "KILL", "TYPE", "normal"))
    assert killed >= 1, killed
    n = produce(stack, 1)
    quiet(stack)
    after_ids = clients(master)
    assert after_ids and not (after_ids & before_ids), (before_ids, after_ids)  # it reconnected
    log = log_since(proc, mark)
    assert not CHANGED.search(log), log[-3000:]
    assert repaired(stack) == rep0, (rep0, repaired(stack))
    print(f"CLIENT KILL TYPE normal: {killed} connections dropped, {n} more records folded after the reconnect, "
          f"nothing repaired (repaired_total stays {rep0})", flush=True)

    # 2. A replica that lacks acknowledged writes.
    assert master.cli("WAIT", 1, 10000) == "1"
    st.detach(replica)
    master.cli("SET", "px-test:after-detach", "1")
    n = produce(stack, 3)
    quiet(stack)
    r = verify(stack, "--set", "redis.host=127.0.0.1", "--set", f"redis.port={master.port}", check=0)
    assert "EQUAL: 0 differences" in r.stdout, r.stdout[-2000:]
    r = verify(stack, "--set", "redis.host=127.0.0.1", "--set", f"redis.port={replica.port}", check=1)
    lost = int(re.search(r"DIFFERENT: (\d+) difference", r.stdout).group(1))
    print(f"replica detached, {n} more records folded into the master: the master verifies EQUAL, the detached "
          f"replica DIFFERENT ({lost} differences)", flush=True)

    # 3. The master dies; the Sentinels serve the replica; the processor
    #    repairs.
    rep1, mark = repaired(stack), os.path.getsize(proc.log_path)
    t_kill = st.kill(master)
    new, _ = st.wait_master(other_than=master)
    assert new is replica and replica.cli("GET", "px-test:after-detach") == "", new
    t_new = time.monotonic() - t_kill
    n = produce(stack, 1)  # the processor meets the failover at its next Redis command
    deadline, r = time.monotonic() + 90, None
    while time.monotonic() < deadline:
        assert proc.proc.poll() is None, f"the processor exited: {proc.proc.returncode}"
        if CHANGED.search(log_since(proc, mark)) and pxtest.lag(stack) == 0:
            r = verify(stack, *via_sentinels)
            if r.returncode == 0:
                break
        time.sleep(1)
    assert r is not None and r.returncode == 0 and "EQUAL: 0 differences" in r.stdout, \
        (r.stdout[-3000:] + r.stderr[-1000:]) if r else log_since(proc, mark)[-3000:]
    assert f"Redis {replica.addr}, master '{st.name}'" in r.stdout, r.stdout[-500:]
    t_equal = time.monotonic() - t_kill
    rep2 = repaired(stack)
    assert rep2 > rep1, (rep1, rep2)
    print(f"master SIGKILLed: the Sentinels named the detached replica after {t_new:.1f} s; with {n} more records "
          f"the processor saw a new master, repaired {rep2 - rep1} batches, and verify was EQUAL {t_equal:.1f} s "
          f"after the kill", flush=True)
    for line in CHANGED.findall(log_since(proc, mark))[:1]:
        print(f"processor: {line}", flush=True)

    assert proc.stop() == 0
    r = verify(stack, *via_sentinels, check=0)
    assert "EQUAL: 0 differences" in r.stdout, r.stdout[-2000:]
    st.stop()


if __name__ == "__main__":
    pxtest.run(test, "test_redis_failover_loss")
