#!/usr/bin/python3
"""presencectl replay and verify against the real processor.

A randomized workload (test_eos's generator: every record kind, Avro and
JSON lifecycle records, poison records) runs through the processor into
its own Redis. Then:
- verify on the live view exits 0 (EQUAL);
- replay into an empty Redis writes every entity, and verify of that copy
  exits 0; replaying again leaves the same keys and an equal copy;
- a replay of an older window (--to) into that copy is refused by the
  watermark guard for every entity that has newer records ("kept"), so the
  copy stays equal;
- replay into a key prefix and database of the live Redis gives a copy
  verify also finds EQUAL, and leaves the live keys alone;
- after one deliberate corruption of one entity's state in the copy, verify
  exits 1 and names exactly that entity; an entity Redis has and the log
  does not is named by verify --scan-redis."""
import re

import ctltest
import pxtest
import test_eos

TTLS = test_eos.TTLS


async def test(stack):
    # the live view equals the log's fold (verify exit 0)
    live, produced, t0 = test_eos.fold_workload(stack, 8)
    mid = t0 + 4000  # a Kafka timestamp halfway through the workload
    print(f"replay: {produced} records produced")

    # replay into an empty Redis
    empty = pxtest.Redis(stack.logdir)
    r = ctltest.ctl(stack, "replay", *TTLS, redis_port=empty.port, check=0)
    print(r.stdout)
    m = re.search(r"-> (\d+) entities.* (\d+) written, (\d+) kept", r.stdout)
    assert m, r.stdout
    ents, wrote, kept = map(int, m.groups())
    assert ents > 100 and wrote == ents and kept == 0, r.stdout
    out = ctltest.ctl(stack, "verify", *TTLS, redis_port=empty.port, check=0).stdout
    assert "EQUAL: 0 differences" in out, out
    # a second replay is idempotent: same watermarks, same state, still equal
    dump = sorted(ctltest.redis_cli(empty.port, "--scan").split())
    r = ctltest.ctl(stack, "replay", *TTLS, redis_port=empty.port, check=0)
    assert sorted(ctltest.redis_cli(empty.port, "--scan").split()) == dump
    out = ctltest.ctl(stack, "verify", *TTLS, redis_port=empty.port, check=0).stdout
    assert "EQUAL: 0 differences" in out, out

    # an older replay (records before `mid` only) never overwrites newer states
    r = ctltest.ctl(stack, "replay", *TTLS, "--to", str(mid), redis_port=empty.port, check=0)
    m = re.search(r" (\d+) written, (\d+) kept", r.stdout)
    assert m and int(m.group(2)) > 0 and int(m.group(1)) + int(m.group(2)) <= ents, r.stdout
    out = ctltest.ctl(stack, "verify", *TTLS, redis_port=empty.port, check=0).stdout
    assert "EQUAL: 0 differences" in out, out

    # replay into a prefix and database of the live Redis
    before = ctltest.redis_cli(live.port, "dbsize")
    ctltest.ctl(stack, "replay", *TTLS, "--key-prefix", "copy:", "--db", "3", redis_port=live.port, check=0)
    assert ctltest.redis_cli(live.port, "dbsize") == before
    keys = ctltest.redis_cli(live.port, "-n", "3", "--scan", "--pattern", "*:state").split()
    assert len(keys) == ents and all(k.startswith("copy:presence:{") for k in keys), keys[:3]
    out = ctltest.ctl(stack, "verify", *TTLS, "--scan-redis", "--set", "redis.key_prefix=copy:", "--set",
                      "redis.db=3", redis_port=live.port, check=0).stdout
    copy = f"Redis 127.0.0.1:{live.port} db 3 key prefix 'copy:'"
    assert f"EQUAL: 0 differences between the log in Kafka {stack.env['KAFKA_BOOTSTRAP']}" in out, out
    assert out.rstrip().endswith(f"the view in {copy}") and f"entities: 0 in {copy} that the log does not have" in out, out

    # corrupt one entity in the empty-Redis copy: verify names exactly it
    victim = sorted(ctltest.redis_cli(empty.port, "--scan", "--pattern", "presence:*:state").split())[7]
    ent = victim[len("presence:{"):-len("}:state")]
    blob = ctltest.redis_cli(empty.port, "hget", victim, "blob")
    bad = re.sub(r'"version":(\d+)', lambda mm: f'"version":{int(mm.group(1)) + 1}', blob)
    assert bad != blob
    ctltest.redis_cli(empty.port, "hset", victim, "blob", bad)
    r = ctltest.ctl(stack, "verify", *TTLS, redis_port=empty.port, check=1)
    differs = re.findall(r"^entity-differs (\S+)$", r.stdout, re.M)
    assert differs == [ent], (differs, ent, r.stdout[-3000:])
    assert "DIFFERENT: 1 difference" in r.stdout, r.stdout[-2000:]
    # an entity the log never had: only --scan-redis looks for it
    ghost = f"{stack.tenant}:order:ghost"
    ctltest.redis_cli(empty.port, "hset", f"presence:{{{ghost}}}:state", "wm", "1,1,1,1", "blob", "{}")
    r = ctltest.ctl(stack, "verify", *TTLS, redis_port=empty.port, check=1)
    assert "DIFFERENT: 1 difference" in r.stdout and "entity-extra" not in r.stdout, r.stdout[-2000:]
    r = ctltest.ctl(stack, "verify", *TTLS, "--scan-redis", redis_port=empty.port, check=1)
    assert re.findall(r"^entity-extra (\S+) ", r.stdout, re.M) == [ghost], r.stdout[-2000:]
    assert re.findall(r"^entity-differs (\S+)$", r.stdout, re.M) == [ent], r.stdout[-2000:]
    assert "DIFFERENT: 2 differences" in r.stdout, r.stdout[-2000:]
    empty.kill()
    live.kill()


if __name__ == "__main__":
    pxtest.run(test, "test_ctl_replay")
