#!/usr/bin/python3
"""presencectl replay, verify and verify --scan-redis on a Redis Cluster
and on a Sentinel-watched master (pxcluster's RedisCluster 3 + 3 and
RedisSentinel), each output naming every master it read.

A randomized workload (test_eos's generator) runs through the processor
into a single Redis of its own, so presence.changes holds the committed
change events. Then:
- replay into a 3 + 3 cluster writes every entity, each on the master of
  its slot; verify of the cluster is EQUAL and counts, per master, the
  entities read (all three hold some);
- verify --scan-redis scans every master; a state key the log does not
  have, put on one master, is found there (exit 1), as is an entity whose
  state was overwritten on its master;
- redis.db with a cluster is refused (exit 2);
- replay into the master the Sentinels name, then its SIGKILL: verify
  through the Sentinels reads the promoted replica and is EQUAL, naming
  it and the Sentinels.

Usage: test_ctl_redis.py (ctest: the `stack` fixture's environment)
"""
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import ctltest  # noqa: E402
import pxcluster  # noqa: E402
import pxtest  # noqa: E402
import test_eos  # noqa: E402

TTLS = test_eos.TTLS


def ctl(stack, *args, check=None):
    return ctltest.ctl(stack, *args, *TTLS, check=check)


async def test(stack):
    # the processor's changes and view equal the log's fold
    live, produced, _ = test_eos.fold_workload(stack, 4)
    print(f"{produced} records through the processor", flush=True)

    # --- a 3 + 3 Redis Cluster -------------------------------------------
    workdir = os.path.join(stack.build, "cluster", "ctl-redis")  # Unix sockets: not under the log dir
    rc = pxcluster.RedisCluster(workdir, masters=3, replicas=1).start()
    masters = sorted(m.addr for m in rc.masters())
    cl = ["--set", "redis.cluster=true", "--set", f"redis.nodes={rc.seeds()}"]
    r = ctl(stack, "replay", *cl, check=0)
    ents = int(re.search(r"-> (\d+) entities", r.stdout).group(1))
    assert ents > 50 and f"{ents} written, 0 kept" in r.stdout, r.stdout
    named = sorted(re.search(r"Redis Cluster of 3 masters (\S+), (\S+), (\S+?)[;:]? ", r.stdout).groups())
    assert named == masters, (named, masters)
    print(f"replay into the cluster: {ents} entities over {', '.join(masters)}", flush=True)

    out = ctl(stack, "verify", *cl, check=0).stdout
    assert "EQUAL: 0 differences" in out, out[-3000:]
    per = {a: (int(n), int(e)) for a, n, e in re.findall(r"read (\S+): (\d+) entities, (\d+) equal", out)}
    assert sorted(per) == masters and sum(n for n, _ in per.values()) == ents, (per, ents)
    assert all(n > 0 and n == e for n, e in per.values()), per
    print(f"verify on the cluster: EQUAL, entities per master {per}", flush=True)

    out = ctl(stack, "verify", "--scan-redis", *cl, check=0).stdout
    scanned = {a: (int(n), int(x)) for a, n, x in re.findall(r"scanned (\S+): (\d+) entities, (\d+) not in", out)}
    assert sorted(scanned) == masters and sum(n for n, _ in scanned.values()) == ents, (scanned, out[-2000:])

    # an entity the log does not have, on one master; one the log has,
    # overwritten on its master
    extra_key = "presence:{zz:ghost:1}:state"
    slot = pxcluster.key_slot(extra_key)
    owner = rc.master_of(slot)
    assert owner.addr in masters
    rc.cli(owner, "HSET", extra_key, "blob", "{}")
    victim = next(k for k in rc_keys(rc, owner) if k != extra_key)
    rc.cli(owner, "HSET", victim, "blob", "not a state")
    r = ctl(stack, "verify", "--scan-redis", *cl, check=1)
    assert "entity-extra zz:ghost:1 (in Redis, not in the log)" in r.stdout, r.stdout[-3000:]
    assert re.search(rf"scanned {re.escape(owner.addr)}: \d+ entities, 1 not in the log", r.stdout), r.stdout[-2000:]
    vid = victim[len("presence:{"):-len("}:state")]
    assert f"entity-differs {vid}\n" in r.stdout and "redis: (undecodable: " in r.stdout, r.stdout[-3000:]
    assert "DIFFERENT: 2 differences" in r.stdout, r.stdout[-1000:]
    print(f"verify --scan-redis: found {vid} corrupt and zz:ghost:1 extra on {owner.addr}", flush=True)

    r = ctl(stack, "verify", *cl, "--set", "redis.db=2", check=2)
    assert "a Redis Cluster has database 0 only" in r.stderr, r.stderr
    rc.stop()

    # --- a master, a replica, 3 Sentinels ---------------------------------
    st = pxcluster.RedisSentinel(workdir, replicas=1, sentinels=3)
    st.start()
    master, replica = st.master(), st.replicas()[0]
    sn = ["--set", f"redis.sentinels={st.sentinels}", "--set", f"redis.master_name={st.name}"]
    r = ctl(stack, "replay", *sn, check=0)
    assert f"{ents} written" in r.stdout and f"Redis {master.addr}, master '{st.name}' of Sentinels {st.sentinels}" \
        in r.stdout, r.stdout
    assert master.cli("WAIT", 1, 10000) == "1"  # the replica has every write
    t_kill = st.kill(master)
    new, _ = st.wait_master(other_than=master)
    print(f"Sentinel failover: {new} named {time.monotonic() - t_kill:.1f} s after the master's SIGKILL", flush=True)
    out = ctl(stack, "verify", *sn, check=0).stdout
    assert "EQUAL: 0 differences" in out and f"Redis {replica.addr}, master '{st.name}'" in out, out[-2000:]
    print(f"verify through the Sentinels after the failover: EQUAL, read {replica.addr}", flush=True)
    st.stop()


def rc_keys(rc, node):
    return rc.cli(node, "--scan", "--pattern", "presence:{*}:state").split()


if __name__ == "__main__":
    pxtest.run(test, "test_ctl_redis")
