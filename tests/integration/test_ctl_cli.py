#!/usr/bin/python3
"""presencectl produce and topics, and a table of bad input: every row must
end with a clear message on stderr and exit 2 (1 where a difference is
the answer), within a bounded time, never a crash (no sanitizer report,
no signal).

- produce: one record of each kind and a JSON lifecycle record reach their
  topics and fold into the expected timeline (audit);
- topics: the stack-made topics pass `check`; replication wanted beyond
  the one broker is reported or refused; a fresh prefix is reported
  missing (exit 1), `create` makes all 13 and `check` passes;
- endpoints: every command's summary names the Kafka bootstrap servers it
  read (and verify/replay the Redis, here one that is not the stack's, as
  when only kafka.bootstrap.servers is set);
- brokers that cannot be reached: every command that talks to Kafka, against
  a closed loopback port, fails after --timeout (not before, not much
  after) with exactly one line on stderr naming the bootstrap servers and
  the reason; against a name that does not resolve it fails at once (well
  under the default 10 s timeout), likewise in one line;
- bad input: unknown topics, unreachable Redis, malformed time ranges (the
  message lists the accepted forms), unknown --type values (listed), bad
  --timeout values, bad flags and commands, invalid events, corrupt
  records in the log (counted and skipped, as the processor dead-letters
  them) and a corrupt state in Redis (verify: 1)."""
import json
import time

import ctltest
import pxtest

CLOSED = f"127.0.0.1:{pxtest.free_port()}"  # nothing listens there
UNREACHABLE = ["--set", f"kafka.bootstrap.servers={CLOSED}", "--timeout", "1"]
NO_SUCH_HOST = "no-such-host.invalid:9092"
WHEN_FORMS = ["now", "epoch milliseconds", "-15m", "2026-11-22", "2026-11-22T10:00:00Z", "2026-11-22T11:00+01:00"]


def run(stack, args, want, msg, **kw):
    t0 = time.time()
    r = ctltest.ctl(stack, *args, **kw)
    took = time.time() - t0
    assert r.returncode == want, (args, r.returncode, r.stdout[-1500:], r.stderr[-1500:])
    assert msg in r.stderr or msg in r.stdout, (args, msg, r.stderr[-1500:])
    assert "runtime error" not in r.stderr and "Sanitizer" not in r.stderr, (args, r.stderr)
    assert took < 30, (args, took)
    r.took = took
    return r


# Every command that talks to Kafka (a row each), for the unreachable and
# unresolvable brokers.
def kafka_commands(stack, key):
    return [["verify"], ["replay"], ["replay", "--dry-run"], ["audit", "--entity", key], ["dlq", "list"],
            ["dlq", "show", "--record", stack.topic("presence.locks.dlt") + ":0:0"], ["dlq", "reinject", "--all"],
            ["produce", "lifecycle", "--key", key, "--type", "MUTATING", "--busy-by", "x"],
            ["topics", "check"], ["topics", "create"]]


def one_line(r, args):
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and r.stdout == "", (args, r.stdout[-1500:], r.stderr[-3000:])
    return lines[0]


async def test(stack):
    tenant = pxtest.unique("t")
    key = f"{tenant}:order:C1"
    ts = 1700000000000
    boot = stack.env["KAFKA_BOOTSTRAP"]
    kafka_where = f"Kafka {boot} (topic prefix '{stack.prefix}')"

    # --- produce ---------------------------------------------------------
    for args in [["lifecycle", "--type", "MUTATING", "--busy-by", "erp", "--write-id", "w1"],
                 ["lifecycle", "--type", "mutated", "--write-id", "w1", "--version", "9", "--json"],
                 ["presence", "--type", "SUB", "--tab", "t1", "--user", "ann", "--name", "Ann", "--mode", "edit"],
                 ["lock", "--type", "LOCK", "--tab", "t1", "--user", "ann", "--name", "Ann", "--field", "total",
                  "--request-id", "q1"]]:
        ts += 1000
        r = run(stack, ["produce", *args, "--key", key, "--ts", str(ts)], 0, "produced")
        assert f"{key} to {stack.prefix}" in r.stdout, r.stdout
        assert r.stdout.rstrip().endswith(f" at Kafka {boot}"), r.stdout
    rows = [json.loads(line) for line in
            ctltest.ctl(stack, "audit", "--entity", key, "--format", "jsonl", check=0).stdout.splitlines()]
    assert [(r["type"], r["ts"] - 1700000000000) for r in rows] == [
        ("STALE_SET", 1000), ("STALE_CLEARED", 2000), ("VERSION_BUMPED", 2000), ("JOINED", 3000),
        ("LOCK_GRANTED", 4000)], rows
    assert rows[0]["busy_by"] == "erp" and rows[2]["version"] == 9 and rows[3]["user_name"] == "Ann"
    assert rows[4]["field"] == "total" and rows[4]["request_id"] == "q1"

    # --- replay --from/--to: records selected by Kafka timestamp ------------
    import pxavro
    codec = pxavro.Codec()
    prod = stack.producer()
    base = (int(time.time()) - 600) * 1000  # before every other record of this test
    for i in range(6):
        v = dict(type="SUB", tenant=tenant, entity="order", id="R1", ts=base + i * 1000, tab_id=f"t{i}",
                 user_id=f"u{i}", user_name="U", mode="VIEW", status="ONLINE", dirty=False)
        prod.produce(stack.topic("presence.heartbeats"), key=f"{tenant}:order:R1", value=codec.encode("presence", v),
                     timestamp=base + i * 1000)
    prod.flush(10)
    for frm, to, n in [(base + 2000, base + 4000, 2), (None, base + 1000, 1), (base + 5000, base + 5001, 1),
                       (base - 60000, base, 0)]:
        args = ["replay", "--dry-run"] + (["--from", str(frm)] if frm else []) + ["--to", str(to)]
        r = run(stack, args, 0, "")
        assert f"replay: {n} records" in r.stdout, (args, r.stdout)
    r = run(stack, ["replay", "--dry-run", "--from", str(base + 5000)], 0, "")
    assert "replay: 5 records" in r.stdout, r.stdout  # the 6th SUB and the 4 records produced above
    assert f"of {kafka_where} ->" in r.stdout and "dry run, Redis untouched" in r.stdout, r.stdout

    # --- topics ----------------------------------------------------------
    r = run(stack, ["topics", "check"], 0, f"OK: 0 of 13 topics differ at {kafka_where}")
    fresh = ["--set", f"topic.prefix={pxtest.unique('f')}."]
    r = run(stack, ["topics", "check", *fresh], 1, "DIFFERENT: 13 of 13")
    assert r.stdout.count("missing") == 13
    r = run(stack, ["topics", "create", "--partitions", "2", *fresh], 0, "OK: 0 of 13 topics differ")
    assert r.stdout.count("created ") == 13
    r = run(stack, ["topics", "create", "--partitions", "2", *fresh], 0, "OK: 0 of 13 topics differ")
    assert r.stdout.count("exists ") == 13
    run(stack, ["topics", "check", "--partitions", "3", *fresh], 1, "the input topics need 3")
    # replication: one broker here, so the defaults are 1 and 1, and more is refused or reported
    r = run(stack, ["topics", "check", *fresh], 0, "(1 brokers; want replication factor 1, min.insync.replicas 1)")
    assert r.stdout.count(" replicas=1 ") == 13 and r.stdout.count("min.insync.replicas=1 ") == 13, r.stdout
    r = run(stack, ["topics", "check", "--replication-factor", "2", *fresh], 1, "DIFFERENT: 13 of 13")
    assert r.stdout.count("replication factor 1, want 2") == 13, r.stdout
    run(stack, ["topics", "create", "--replication-factor", "2", *fresh], 2, "replication factor 2 needs 2 brokers")

    # --- corrupt records in the log: counted, skipped, exit 0 -------------
    prod = stack.producer()
    prod.produce(stack.topic("presence.heartbeats"), key=key, value=b"\xc3\x01\xff\xff")
    prod.produce(stack.topic("presence.locks"), key=key, value=b"")
    prod.produce(stack.topic("core.entities.lifecycle.mutated"), key=key, value=b"{\"type\":")
    prod.produce(stack.topic("presence.heartbeats"), key=f"{tenant}:order:OTHER", value=b"x")
    prod.flush(10)
    r = run(stack, ["replay", "--dry-run"], 0, "skipped 4 that do not decode")
    assert "dry run" in r.stdout
    run(stack, ["replay", "--dry-run", "--strict"], 2, "--strict: 4 input records were not folded")

    # --- progress on a terminal (script(1) gives it a pty) -------------------
    import os
    import shlex
    import subprocess
    cmd = [os.path.join(stack.build, "tools", "presencectl"), "replay", "--dry-run"] + stack.common()
    tty = subprocess.run(["script", "-qec", shlex.join(cmd), "/dev/null"], capture_output=True, text=True,
                         timeout=60).stdout
    lines = [x for x in tty.replace("\r\n", "\n").split("\r") if "rec/s" in x]
    assert any(stack.topic("presence.heartbeats") in x and "100%" in x for x in lines), tty[-2000:]
    assert "rec/s" not in r.stderr  # not a terminal: no progress lines

    # --- a corrupt state in another Redis: verify reports it, naming both ends
    redis = pxtest.Redis(stack.logdir)
    other = f"Redis 127.0.0.1:{redis.port} db 0"
    r = run(stack, ["replay"], 0, "", redis_port=redis.port)
    assert f"of {kafka_where} ->" in r.stdout and f"; {other}: " in r.stdout, r.stdout
    r = run(stack, ["replay", "--key-prefix", "copy:", "--db", "2"], 0, "", redis_port=redis.port)
    assert f"; Redis 127.0.0.1:{redis.port} db 2 key prefix 'copy:': " in r.stdout, r.stdout
    state = f"presence:{{{key}}}:state"
    ctltest.redis_cli(redis.port, "hset", state, "blob", "{not json")
    r = ctltest.ctl(stack, "verify", redis_port=redis.port)
    assert r.returncode == 1 and f"entity-differs {key}" in r.stdout and "undecodable" in r.stdout, r.stdout[-2000:]
    last = r.stdout.splitlines()[-1]
    assert last.startswith("DIFFERENT: ") and last.endswith(f" between the log in {kafka_where} and the view in {other}"), last
    assert f"equal in {other}" in r.stdout and f"presence.changes at Kafka {boot}" in r.stdout, r.stdout[-2000:]
    r = run(stack, ["audit", "--entity", key], 0, f"presencectl audit: 5 changes, read from {kafka_where}")
    r = run(stack, ["dlq", "list"], 0, f"records, read from {kafka_where}")

    # --- brokers that cannot be reached ---------------------------------------
    for args in kafka_commands(stack, key):
        r = run(stack, [*args, *UNREACHABLE], 2, "")
        line = one_line(r, args)
        assert f"Kafka {CLOSED} unreachable: no broker answered within 1 s (--timeout)" in line, (args, line)
        assert "Connection refused" in line, (args, line)
        assert 0.9 < r.took < 5, (args, r.took)  # waited for the timeout, not for librdkafka's defaults
    r = run(stack, ["verify", "--set", f"kafka.bootstrap.servers={CLOSED}", "--timeout", "500ms"], 2, "")
    assert "within 0.5 s" in one_line(r, "500ms") and r.took < 4, (r.took, r.stderr)
    r = run(stack, ["verify", "--set", f"kafka.bootstrap.servers={CLOSED}", "--set", "timeout_ms=700"], 2, "")
    assert "within 0.7 s" in one_line(r, "timeout_ms") and r.took < 4, (r.took, r.stderr)
    for args in kafka_commands(stack, key):  # the default timeout (10 s): a resolve failure ends the wait at once
        r = run(stack, [*args, "--set", f"kafka.bootstrap.servers={NO_SUCH_HOST}"], 2, "")
        line = one_line(r, args)
        assert f"Kafka {NO_SUCH_HOST} unreachable: Failed to resolve '{NO_SUCH_HOST}'" in line, (args, line)
        assert r.took < 5, (args, r.took)
    # two bootstrap servers, one of them fine: the name that does not resolve is not fatal
    run(stack, ["topics", "check", "--set", f"kafka.bootstrap.servers={NO_SUCH_HOST},{boot}"], 0, "OK: 0 of 13")

    # --- the table -------------------------------------------------------
    nope = ["--set", "topic.prefix=no-such-prefix."]
    table = [
        (["verify", *nope], "no such topic"),
        (["replay", "--dry-run", *nope], "no such topic"),
        (["audit", "--tenant", tenant, *nope], "no such topic"),
        (["dlq", "list", *nope], "no such topic"),
        (["produce", "presence", "--key", key, "--type", "SUB", "--tab", "t", "--user", "u", *nope], "no such topic"),
        (["verify", *nope], f"at Kafka {boot}"),
        (["replay", "--set", "redis.port=1"], "Redis 127.0.0.1:1 unreachable"),
        (["verify", "--set", "redis.port=1"], "Redis 127.0.0.1:1 unreachable"),
        (["verify", "--set", "redis.host=/nonexistent/redis.sock"], "Redis /nonexistent/redis.sock unreachable"),
        (["replay", "--from", "yesterday"], "--from: 'yesterday'"),
        (["replay", "--from", "now", "--to", "-1h"], "empty time range"),
        (["replay", "--to", "2025-13-01"], "--to"),
        (["replay", "--from", "2025-11-22T10:00:00"], "zone"),
        (["audit", "--tenant", tenant, "--from", "-5x"], "unit"),
        (["audit", "--tenant", tenant, "--to", "99999999999999999999"], "--to"),
        (["frobnicate"], "unknown command"),
        (["replay", "--frob"], "unknown flag --frob"),
        (["replay", "--dry-run key-prefix=x"], "unknown flag"),
        (["replay", "--" + "x" * 100], "unknown flag"),
        (["replay", "--DRY-RUN"], "unknown flag"),
        (["replay", "--from"], "needs a value"),
        (["replay", "--dry-run=yes"], "takes no value"),
        (["replay", "stray"], "unexpected argument"),
        (["verify", "--set", "no.such.key=1"], "no.such.key"),
        (["verify", "--set", "kafka.no.such.property=1"], "no.such.property"),
        (["produce"], "subcommand"),
        (["produce", "banana", "--key", key, "--type", "SUB"], "unknown kind"),
        (["produce", "presence", "--type", "SUB"], "--key"),
        (["produce", "presence", "--key", "a:b", "--type", "SUB"], "--key"),
        (["produce", "presence", "--key", key, "--type", "JUMP"], "not a presence type (SUB, HB, UNSUB, EXPIRE;"),
        (["produce", "lifecycle", "--key", key, "--type", "SAVED"], "not a lifecycle type (MUTATING, MUTATED, EXPIRE;"),
        (["produce", "lock", "--key", key, "--type", "GRAB"], "not a lock type (LOCK, UNLOCK, EXPIRE;"),
        (["produce", "presence", "--key", key, "--type", "SUB"], "invalid presence SUB"),
        (["produce", "presence", "--key", key, "--type", "SUB", "--tab", "t", "--user", "u", "--mode", "x"], "--mode"),
        (["produce", "lock", "--key", key, "--type", "LOCK", "--json"], "invalid lock"),
        (["produce", "lifecycle", "--key", key, "--type", "MUTATED", "--version", "-3"], "--version"),
        (["produce", "lifecycle", "--key", key, "--type", "MUTATED", "--version", "99999999999999999999"],
         "--version"),
        (["produce", "lifecycle", "--key", key, "--type", "MUTATED", "--version", "7x"], "--version"),
        (["produce", "lifecycle", "--key", key, "--type", "MUTATING", "--busy-by", "x", "--ts", "noon"], "--ts"),
        (["produce", "presence", "--key", key, "--type", "SUB", "--tab", "t" * 200, "--user", "u"], "longer than"),
        (["topics", "delete"], "unknown subcommand"),
        (["topics", "create", "--partitions", "0"], "--partitions"),
        (["topics", "check", "--replication-factor", "0"], "--replication-factor must be 1..32"),
        (["topics", "check", "--min-insync-replicas", "x"], "--min-insync-replicas must be 1..32"),
        (["topics", "check", "--min-insync-replicas", "2"], "is more than the replication factor 1"),
        (["replay", "--frob"], "replay takes --from --to --dry-run --key-prefix --db --strict --timeout"),
        *[(["verify", "--timeout", bad], f"--timeout '{bad}': expected seconds") for bad in
          ["0", "99ms", "2h", "abc", "5x", "1.", ".5", "-1", "1e3", "3601", "99999999999", " 5", "5 s"]],
        (["verify", "--timeout"], "--timeout needs a value"),
    ]
    for args, msg in table:
        r = run(stack, args, 2, msg)
        if args != ["frobnicate"]:  # that one prints the usage after its line
            one_line(r, args)
    # a time that does not parse: the message lists every accepted form
    for args in [["replay", "--from", "yesterday"], ["audit", "--tenant", tenant, "--to", "noon"],
                 ["produce", "lifecycle", "--key", key, "--type", "MUTATING", "--ts", "tomorrow"],
                 ["produce", "presence", "--key", key, "--type", "EXPIRE", "--tab", "t", "--user", "u",
                  "--expires-at", "soon"]]:
        line = one_line(run(stack, args, 2, "a time is one of: "), args)
        assert all(f in line for f in WHEN_FORMS), (args, line)
    redis.kill()


if __name__ == "__main__":
    pxtest.run(test, "test_ctl_cli")
