"""Asking Sentinels where the master is (core/px_redis_sentinel.c, through
sentinel_probe) and following them (core/px_redis_cluster.c with
Sentinels, through rcl_probe) on a real master + replica + 3 Sentinels
started by the fault harness (pxcluster.RedisSentinel):

1. the Sentinels name the master; a Sentinel that names a server which is
   not a master (a lone Sentinel set to watch the replica) is passed over;
2. a Sentinel that hangs (SIGSTOP) is given up after the timeout and the
   next one answers;
3. a master name no Sentinel knows is told apart (exit 3) from a failure;
4. the master SIGKILLed: the probe, asked in a loop, never names the dead
   server, and names the promoted replica once the Sentinels agree on it;
   the slot-aware client, writing and reading keys in a loop meanwhile,
   follows the Sentinels to the new master and reads back its last round
   whole (the times from the kill and the longest gap are printed);
5. the old master restarted: the Sentinels make it a replica, the probe
   keeps naming the new master.

Usage: test_sentinel_master.py SENTINEL_PROBE RCL_PROBE WORKDIR  (from ctest)
"""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pxcluster  # noqa: E402

PROBE, RCL_PROBE, WORKDIR = sys.argv[1], sys.argv[2], sys.argv[3]
NAME = "presence"


def probe(sentinels, name=NAME, timeout_ms=500):
    """(exit code, master "host:port" or None, index of the Sentinel, stderr)."""
    out = subprocess.run([PROBE, name, str(timeout_ms), *sentinels], capture_output=True, text=True, timeout=30)
    f = dict(kv.split("=", 1) for kv in out.stdout.split())
    return out.returncode, f.get("master"), int(f["sentinel"]) if "sentinel" in f else None, out.stderr.strip()


def main():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    st = pxcluster.RedisSentinel(WORKDIR, replicas=1, sentinels=3)
    print(f"master + replica + 3 Sentinels ready in {st.start():.1f} s", flush=True)
    master, replica = st.master(), st.replicas()[0]
    real = [s.addr for s in st.sentinel_procs]

    # 1. A lone Sentinel watching the replica as if it were the master names
    #    a server whose ROLE says slave: passed over.
    rogue = pxcluster.SentinelProc(WORKDIR, pxcluster.free_ports(1)[0])
    rogue.start(NAME, replica.port, 1, 60000, 60000)
    deadline = time.monotonic() + 10
    while rogue.master_addr(NAME) != ("127.0.0.1", replica.port):
        assert time.monotonic() < deadline, "the lone Sentinel does not answer"
        time.sleep(0.05)
    rc, m, which, err = probe([rogue.addr] + real)
    assert rc == 0 and m == master.addr and which == 1, (rc, m, which, err)
    rc, m, which, err = probe([rogue.addr])
    assert rc == 1 and m is None and f"names {replica.addr}, which is not a master (a replica)" in err, (rc, err)
    print(f"a Sentinel naming the replica is passed over: {err}", flush=True)
    rogue.stop()

    # 2. A hung Sentinel: the connection is accepted (the kernel's backlog)
    #    but nothing answers; the next one does after the timeout.
    hung = st.sentinel_procs[0]
    os.kill(hung.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        rc, m, which, err = probe(real, timeout_ms=300)
        took = time.monotonic() - t0
    finally:
        os.kill(hung.proc.pid, signal.SIGCONT)
    assert rc == 0 and m == master.addr and which == 1, (rc, m, which, err)
    print(f"a hung Sentinel given up, the next one answered: {took:.2f} s with a 300 ms timeout", flush=True)

    # 3. No Sentinel knows the name: exit 3, each Sentinel named.
    rc, m, which, err = probe(real, name="no-such-master")
    assert rc == 3 and all(f"sentinel {a}: no master of that name" in err for a in real), (rc, err)
    rc, m, which, err = probe(["127.0.0.1:1"] + real, name="no-such-master")
    assert rc == 3 and "sentinel 127.0.0.1:1: " in err, (rc, err)

    # 4. The master dies: never named once dead; the replica once promoted;
    #    the client follows.
    master.cli("SET", "k", "before")
    loop = subprocess.Popen([RCL_PROBE, f"sentinel:{NAME}@{st.sentinels}", "loop", "s", "200", "14"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert loop.poll() is None, loop.communicate()
    t_kill = st.kill(master)
    seen, first_new = set(), None
    while time.monotonic() - t_kill < 30:
        rc, m, which, err = probe(real)
        if rc == 0:
            assert m != master.addr, f"the dead master was named: {m}"
            seen.add(m)
            if m == replica.addr:
                first_new = time.monotonic() - t_kill
                break
        time.sleep(0.05)
    assert first_new is not None, f"the promoted replica was never named (last: {rc} {err})"
    new, _ = st.wait_master(other_than=master)
    assert new is replica and replica.cli("GET", "k") == "before", (new, replica.cli("GET", "k"))
    print(f"master SIGKILLed: the probe named the promoted replica {first_new:.2f} s after the kill "
          f"(down-after {st.down_after_ms} ms); nothing else named: {sorted(seen)}", flush=True)
    out, err = loop.communicate(timeout=60)
    f = dict(kv.split("=", 1) for kv in out.split())
    assert loop.returncode == 0 and f.get("final") == "ok", (loop.returncode, out, err[-2000:])
    assert f["master_changes"] == "1" and int(f["rounds"]) > int(f["failed"]), f
    assert replica.cli("GET", "{s:0}:k") == "final-0", replica.cli("GET", "{s:0}:k")
    print(f"the client followed the Sentinels: {f['rounds']} rounds of 200 keys, {f['failed']} failed, longest gap "
          f"{f['max_gap_ms']} ms, {f['refreshes']} asks, master changed {f['master_changes']} time", flush=True)

    # 5. The old master back (empty, as a master): the Sentinels make it a
    #    replica of the new one; the probe names the new master throughout.
    st.restart(master)
    t0 = time.monotonic()
    while True:
        rc, m, which, err = probe(real)
        assert rc == 0 and m == replica.addr, (rc, m, err)
        if master.role() == "slave":
            break
        assert time.monotonic() - t0 < 40, "the old master was not made a replica"
        time.sleep(0.2)
    st.wait_replica_of(master, replica)
    print(f"the old master rejoined as a replica in {time.monotonic() - t0:.1f} s; the probe named "
          f"{replica.addr} throughout", flush=True)
    st.stop()
    print("test_sentinel_master: OK")


if __name__ == "__main__":
    main()
