#!/usr/bin/python3
"""What a Redis master failover costs, on a running stack (scripts/stack.sh
up --redis-replica or --redis-cluster): bench/run_redis_failover.sh runs it.

Each cycle: the slot-aware client of the programs (px_rcl, driven by
tests/cluster/rcl_probe) writes and reads back 200 keys spread over every
slot in rounds; the master (the one the Sentinels name, or the master of
slot 0) is SIGKILLed with stack.sh kill-redis; the time until a new master
is in place is taken (the Sentinels name another server / the dead master's
replica says it is master), the client's longest gap between two good
rounds and its failed rounds are read, then the old master is started again
(stack.sh start-redis) and the time until it is a replica in sync is taken.

    redis_failover.py STATE_DIR RCL_PROBE CYCLES
Prints one line per cycle and a summary; exits 1 if a cycle failed.
"""
import os
import re
import subprocess
import sys
import time

STATE, PROBE, CYCLES = sys.argv[1], sys.argv[2], int(sys.argv[3])
STACK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "stack.sh")


def env():
    out = {}
    with open(os.path.join(STATE, "stack.env")) as f:
        for line in f:
            k, sep, v = line.strip().partition("=")
            if sep:
                out[k] = v
    return out


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *map(str, args)], capture_output=True, text=True,
                          timeout=10).stdout.strip()


def info(port):
    return dict(line.split(":", 1) for line in cli(port, "INFO", "replication").splitlines() if ":" in line)


def stack(*args):
    out = subprocess.run(["bash", STACK, *map(str, args), "--state", STATE], capture_output=True, text=True,
                         timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"stack.sh {args}: {out.stdout} {out.stderr}")
    return out.stdout


def wait(pred, timeout=60):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(0.02)
    raise RuntimeError("timed out")


def main():
    e = env()
    mode = e["REDIS_MODE"]
    nodes = {int(k.split("_")[2]): int(v.rsplit(":", 1)[1]) for k, v in e.items()
             if re.fullmatch(r"REDIS_NODE_\d+", k)}
    sentinel = int(e["REDIS_SENTINELS"].split(",")[0].rsplit(":", 1)[1]) if mode == "replica" else None
    seeds = f"sentinel:{e['REDIS_MASTER_NAME']}@{e['REDIS_SENTINELS']}" if mode == "replica" else e["REDIS_NODES"]
    failed = 0
    rows = []
    for cycle in range(CYCLES):
        if mode == "replica":
            host_port = cli(sentinel, "SENTINEL", "get-master-addr-by-name", e["REDIS_MASTER_NAME"]).split()
            mport = int(host_port[1])
        else:
            slots = cli(nodes[1], "CLUSTER", "SLOTS").split()
            mport = int(slots[3])  # slot range 0-..'s master: start, end, host, port
        victim = next(n for n, p in nodes.items() if p == mport)
        replica = next((p for p in nodes.values() if info(p).get("master_port") == str(mport)), None)
        loop = subprocess.Popen([PROBE, seeds, "loop", f"fo{cycle}", "200", "16"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(4)
        out = stack("kill-redis", victim)
        t_sig = int(re.search(r"signalled at (\d+) ms", out).group(1)) / 1000
        if mode == "replica":
            wait(lambda: cli(sentinel, "SENTINEL", "get-master-addr-by-name", e["REDIS_MASTER_NAME"]).split()[1:]
                 not in ([str(mport)], []))
        else:
            wait(lambda: info(replica).get("role") == "master")
        t_new = time.time() - t_sig
        stdout, stderr = loop.communicate(timeout=120)
        f = dict(kv.split("=", 1) for kv in stdout.split())
        stack("start-redis", victim)
        t0 = time.monotonic()
        wait(lambda: info(mport).get("role") == "slave" and info(mport).get("master_link_status") == "up", 90)
        t_back = time.monotonic() - t0
        ok = loop.returncode == 0 and f.get("final") == "ok"
        failed += not ok
        rows.append((t_new, int(f.get("max_gap_ms", -1)) / 1000, int(f.get("failed", -1)), int(f.get("rounds", -1)),
                     t_back))
        print(f"{mode} cycle {cycle + 1}: master 127.0.0.1:{mport} SIGKILLed; new master in place {t_new:.1f} s "
              f"after; client's longest gap {rows[-1][1]:.1f} s, {f.get('failed')} of {f.get('rounds')} rounds "
              f"failed, last round {'whole' if ok else 'NOT whole'}; old master back as a replica in sync "
              f"{t_back:.1f} s after its restart", flush=True)
        if not ok:
            print(stderr[-2000:], file=sys.stderr)
    cols = list(zip(*rows))
    print(f"{mode} summary ({CYCLES} cycles): new master {min(cols[0]):.1f}-{max(cols[0]):.1f} s, client gap "
          f"{min(cols[1]):.1f}-{max(cols[1]):.1f} s, failed rounds {min(cols[2])}-{max(cols[2])}, rejoin "
          f"{min(cols[4]):.1f}-{max(cols[4]):.1f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
