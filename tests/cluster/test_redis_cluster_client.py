"""The slot-aware Redis client (core/px_redis_cluster.c) on a real 3 + 3
Redis Cluster started by the fault harness (pxcluster.py): keys spread
over every slot written and read back in pipelines; a slot moved while the
client holds a stale map (MOVED); a slot half migrated (ASK); a master
killed with SIGKILL and one failed over by hand while the client writes
and reads in a loop. Prints the longest gap between two good rounds for
each failover.

Usage: test_redis_cluster_client.py PROBE WORKDIR  (ctest passes both)
"""
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pxcluster  # noqa: E402

PROBE, WORKDIR = sys.argv[1], sys.argv[2]
N = 3000


def probe(seeds, *args, check=True):
    out = subprocess.run([PROBE, seeds, *map(str, args)], capture_output=True, text=True, timeout=120)
    figures = dict(kv.split("=", 1) for kv in out.stdout.split())
    if check and out.returncode != 0:
        raise AssertionError(f"rcl_probe {args} failed: {out.stdout} {out.stderr[-2000:]}")
    return figures, out


def slot_of(i, prefix):
    return pxcluster.key_slot(f"{{{prefix}:{i}}}:k")


def main():
    shutil.rmtree(WORKDIR, ignore_errors=True)
    os.makedirs(WORKDIR)
    rc = pxcluster.RedisCluster(WORKDIR, masters=3, replicas=1).start()
    seeds = rc.seeds()

    # 1. Every slot's keys through one client.
    f, _ = probe(seeds, "write", "a", N, "v1")
    assert f["bad"] == "0" and f["masters"] == "3", f
    f, _ = probe(seeds, "check", "a", N, "v1")
    assert f["bad"] == "0" and f["moved"] == "0", f
    print(f"wrote and read {N} keys over 3 masters", flush=True)

    # 2. MOVED: the slot of key 0 moves after the client read its map.
    s0 = slot_of(0, "a")
    src = rc.master_of(s0)
    dst = next(m for m in rc.masters() if m.port != src.port)
    loop = subprocess.Popen([PROBE, seeds, "loop", "a", "300", "4"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    time.sleep(1)
    rc.migrate_slot(s0, dst)
    out, errs = loop.communicate(timeout=60)
    f = dict(kv.split("=", 1) for kv in out.split())
    assert loop.returncode == 0 and f["final"] == "ok", (out, errs[-2000:])
    assert int(f["moved"]) >= 1 and int(f["refreshes"]) >= 2, f
    print(f"slot {s0} moved {src.port} -> {dst.port} under load: {out.strip()}", flush=True)

    # 3. ASK: a slot with half its keys moved and the migration open.
    by_slot = {}
    for i in range(N):
        by_slot.setdefault(slot_of(i, "a"), []).append(f"{{a:{i}}}:k")
    s1, keys = max(by_slot.items(), key=lambda kv: len(kv[1]) if kv[0] != s0 else 0)
    assert len(keys) >= 2, "no slot holds two keys"
    src1 = rc.master_of(s1)
    dst1 = next(m for m in rc.masters() if m.port != src1.port)
    probe(seeds, "write", "a", N, "v2")
    moved_keys = keys[: max(1, len(keys) // 2)]
    rc.migrate_slot(s1, dst1, finish=False, keys=moved_keys)
    f, _ = probe(seeds, "check", "a", N, "v2")
    assert f["bad"] == "0" and int(f["ask"]) >= len(moved_keys), f  # the others: answered by the source
    rc.migrate_slot(s1, dst1)  # the rest, then SETSLOT NODE everywhere
    f, _ = probe(seeds, "check", "a", N, "v2")
    assert f["bad"] == "0", f
    print(f"slot {s1} half migrated: {len(moved_keys)} of its {len(keys)} keys answered through ASK", flush=True)

    # 4. A master killed with SIGKILL while the client loops.
    victim = rc.master_of(slot_of(2, "a"))
    loop = subprocess.Popen([PROBE, seeds, "loop", "a", "300", "14"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    rc.kill(victim)
    waited = rc.wait_ok(timeout=40)
    out, errs = loop.communicate(timeout=90)
    f = dict(kv.split("=", 1) for kv in out.split())
    assert loop.returncode == 0 and f["final"] == "ok", (out, errs[-2000:])
    assert int(f["rounds"]) > int(f["failed"]), f
    print(f"master {victim.port} killed: cluster ok again {waited:.1f} s after; "
          f"client's longest gap {int(f['max_gap_ms']) / 1000:.1f} s ({out.strip()})", flush=True)
    rc.restart(victim)  # it rejoins as a replica
    rc.wait_ok()
    rc.wait_replicas()  # until every node sees it as its new master's replica, in sync

    # 5. A failover by hand (no data lost: the replica catches up first).
    m = rc.master_of(slot_of(3, "a"))
    rep = rc.replicas_of(m)[0]
    loop = subprocess.Popen([PROBE, seeds, "loop", "a", "300", "6"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    took = rc.failover(rep)
    out, errs = loop.communicate(timeout=60)
    f = dict(kv.split("=", 1) for kv in out.split())
    assert loop.returncode == 0 and f["final"] == "ok", (out, errs[-2000:])
    print(f"CLUSTER FAILOVER {m.port} -> {rep.port} took {took:.1f} s; "
          f"client's longest gap {int(f['max_gap_ms']) / 1000:.1f} s", flush=True)

    # 6. No master reachable: a clear error naming the node, not a hang.
    rc.stop()
    t0 = time.monotonic()
    f, out = probe(seeds, "check", "a", 10, "v2", check=False)
    assert out.returncode != 0 and re.search(r"127\.0\.0\.1:\d+", out.stderr), (out.stdout, out.stderr)
    print(f"all nodes down: failed in {time.monotonic() - t0:.1f} s: {out.stderr.strip()[:200]}", flush=True)
    print("test_redis_cluster_client: PASS")


if __name__ == "__main__":
    main()
