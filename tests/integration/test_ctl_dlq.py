#!/usr/bin/python3
"""presencectl dlq against the real processor: poison records (bytes that
are not Avro on presence.heartbeats, a lifecycle JSON with a wrong field
type) land in the DLQs; `dlq list` shows them with their errors and
original coordinates; `dlq show` decodes the headers and dumps the bytes;
re-injecting them unchanged is refused (they would come straight back);
re-injecting one with a fixed value applies it exactly once (one
STALE_SET in presence.changes, one copy in the topic), and running the
same command again injects nothing, and neither do three reinjectors of
one record run at the same time (one copy, ever). `list --format jsonl`
carries the status the table shows ("dead", then "reinjected") beside the
boolean; a record key that is not UTF-8 still gives valid JSON. Bad
selections exit 2 with a message."""
import json
import os
import subprocess
import time

import ctltest
import pxtest


def copies_with_header(stack, topic, value):
    """Records of topic (read_committed) whose px.reinjected-from is value."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": stack.env["KAFKA_BOOTSTRAP"], "group.id": pxtest.unique("rd-"),
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    c.subscribe([topic])
    n, eof, deadline = 0, 0, time.time() + 20
    try:
        while eof < 3 and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                eof += 1
                continue
            if dict(m.headers() or []).get("px.reinjected-from") == value.encode():
                n += 1
    finally:
        c.close()
    return n


async def test(stack):
    tenant = pxtest.unique("t")
    stack.start_processor("--set", "http.port=0")
    prod = stack.producer()
    coords = {}

    def send(topic, key, value, name):
        prod.produce(stack.topic(topic), key=key, value=value,
                     on_delivery=lambda err, msg: coords.__setitem__(name, (msg.partition(), msg.offset())))
        prod.flush(10)

    k1, k2 = f"{tenant}:order:P1", f"{tenant}:order:P2"
    send("presence.heartbeats", k1, b"\x00not avro", "bad1")
    bad_json = {"type": "MUTATING", "tenant": tenant, "entity": "order", "id": "P2", "busy_by": 42, "write_id": "w9"}
    send("core.entities.lifecycle.mutating", k2, json.dumps(bad_json).encode(), "bad2")
    k3 = tenant.encode() + b":order:\xff\xfe"  # not UTF-8: no entity key, dead-lettered as it is
    send("presence.locks", k3, b"\x00also not avro", "bad3")

    rows = []
    deadline = time.time() + 60
    while time.time() < deadline and len(rows) < 3:
        time.sleep(1)
        r = subprocess.run([os.path.join(stack.build, "tools", "presencectl"), "dlq", "list", "--format", "jsonl"]
                           + stack.common(), capture_output=True, timeout=120)
        assert r.returncode == 0, r
        rows = [json.loads(line) for line in r.stdout.decode("utf-8").splitlines()]  # strict UTF-8: valid JSON text
    assert len(rows) == 3, rows
    by_topic = {row["topic"]: row for row in rows}
    r3 = by_topic[stack.topic("presence.locks")]
    assert r3["key"] == tenant + ":order:\ufffd\ufffd" and r3["status"] == "dead", r3
    del by_topic[stack.topic("presence.locks")]
    rows = list(by_topic.values())
    r1 = by_topic[stack.topic("presence.heartbeats")]
    r2 = by_topic[stack.topic("core.entities.lifecycle.mutating")]
    assert (r1["partition"], r1["offset"], r1["key"]) == (*coords["bad1"], k1), r1
    assert (r2["partition"], r2["offset"], r2["key"]) == (*coords["bad2"], k2), r2
    assert "unknown schema id" in r1["error"], r1  # 00 starts a Confluent header
    assert "busy_by" in r2["error"], r2
    assert not r1["reinjected"] and not r2["reinjected"]
    assert r1["status"] == r2["status"] == "dead", (r1, r2)
    assert r1["time"].endswith("Z") and r1["time"][:4].isdigit(), r1
    assert r1["record"].startswith(stack.topic("presence.heartbeats.dlt") + ":")
    assert r1["value_bytes"] == len(b"\x00not avro")

    # table and show
    table = ctltest.ctl(stack, "dlq", "list", "--topic", "core.entities.lifecycle.mutating", check=0).stdout
    assert len(table.splitlines()) == 2 and r2["record"] in table and "dead" in table, table
    show = ctltest.ctl(stack, "dlq", "show", "--record", r1["record"], check=0).stdout
    assert "not avro" in show and r1["error"] in show and "decoded:   no:" in show, show

    # unchanged poison is refused, nothing produced
    r = ctltest.ctl(stack, "dlq", "reinject", "--all", check=2)
    assert "does not decode" in r.stderr and "nothing reinjected" in r.stderr, r.stderr

    # the fixed record applies once
    fixed = dict(bad_json, busy_by="erp-fixed", ts=int(time.time() * 1000))
    path = os.path.join(stack.logdir, "fixed.json")
    with open(path, "w") as f:
        f.write(json.dumps(fixed) + "\n")
    args = ["dlq", "reinject", "--record", r2["record"], "--value-file", path]
    out = ctltest.ctl(stack, *args, check=0).stdout
    assert "reinjected 1, already reinjected 0" in out, out
    out = ctltest.ctl(stack, *args, check=0).stdout
    assert "reinjected 0, already reinjected 1" in out and "already reinjected " + r2["record"] in out, out
    changes = stack.changes(tenant, timeout=30, until=lambda ch: any(c["type"] == "STALE_SET" for c in ch))
    time.sleep(2)
    changes = stack.changes(tenant, timeout=5)
    stale = [c for c in changes if c["type"] == "STALE_SET"]
    assert len(stale) == 1 and stale[0]["busy_by"] == "erp-fixed" and stale[0]["id"] == "P2", changes
    assert copies_with_header(stack, stack.topic("core.entities.lifecycle.mutating"), r2["record"]) == 1
    rows = [json.loads(line) for line in ctltest.ctl(stack, "dlq", "list", "--topic", "presence.heartbeats", "--topic",
                                                      "core.entities.lifecycle.mutating", "--format", "jsonl",
                                                      check=0).stdout.splitlines()]
    assert sorted((r["record"], r["reinjected"], r["status"]) for r in rows) == \
        sorted([(r1["record"], False, "dead"), (r2["record"], True, "reinjected")]), rows
    table = ctltest.ctl(stack, "dlq", "list", check=0).stdout.splitlines()
    starts = [table[0].index(h) for h in ["DLQ RECORD", "TIME", "ORIGINAL", "STATUS", "KEY", "ERROR"]]
    status = {line[:starts[1]].rstrip(): line[starts[3]:starts[4]].rstrip() for line in table[1:]}
    assert status[r1["record"]] == "dead" and status[r2["record"]] == "reinjected", table
    assert all(line[s - 1] == " " for line in table[1:] for s in starts[1:]), table

    # two reinjectors of the same record at once: one copy at most, ever

    import pxavro
    good = pxavro.Codec().encode("presence", dict(type="SUB", tenant=tenant, entity="order", id="P1",
                                                  ts=int(time.time() * 1000), tab_id="tp", user_id="pat",
                                                  user_name="Pat", mode="VIEW", status="ONLINE", dirty=False))
    path1 = os.path.join(stack.logdir, "fixed1.avro")
    with open(path1, "wb") as f:
        f.write(good)
    cmd = [os.path.join(stack.build, "tools", "presencectl"), "dlq", "reinject", "--record", r1["record"],
           "--value-file", path1] + stack.common()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [(p.wait(120), *p.communicate()) for p in procs]
    print("concurrent reinjectors:", [(rc, out.strip().splitlines()[-1:], err.strip()[-160:]) for rc, out, err in outs])
    assert all(rc in (0, 2) for rc, _, _ in outs) and any(rc == 0 for rc, _, _ in outs), outs
    assert sum("reinjected 1," in out for _, out, _ in outs) <= 1, outs
    for rc, out, err in outs:  # a loser was fenced or found the winner's copy
        assert (rc == 0 and ("reinjected 1," in out or "already reinjected " + r1["record"] in out)) or \
            (rc == 2 and ("fenced" in err.lower() or "commit_transaction" in err or "init_transactions" in err)), \
            (rc, out, err)
    out = ctltest.ctl(stack, "dlq", "reinject", "--record", r1["record"], "--value-file", path1, check=0).stdout
    assert "reinjected 0, already reinjected 1" in out, out
    assert copies_with_header(stack, stack.topic("presence.heartbeats"), r1["record"]) == 1
    joined = stack.changes(tenant, timeout=30, until=lambda ch: any(c["type"] == "JOINED" for c in ch))
    assert [c["user_id"] for c in joined if c["type"] == "JOINED"] == ["pat"], joined

    # bad selections
    for a, msg in [(["reinject"], "give --all or --record"),
                   (["reinject", "--all", "--record", r1["record"]], "give --all or --record"),
                   (["reinject", "--all", "--value-file", path], "exactly one --record"),
                   (["reinject", "--record", r1["record"], "--value-file", "/nonexistent"], "cannot read"),
                   (["show", "--record", "nonsense"], "expected TOPIC.dlt:PARTITION:OFFSET"),
                   *[(["show", "--record", bad], "expected TOPIC.dlt:PARTITION:OFFSET") for bad in
                     ["", ":0:0", "a.dlt:1", "a.dlt::1", "a.dlt:1:", "a.dlt:-1:0", "a.dlt:0:-5", "a.dlt:0:1x",
                      "a.dlt:x:1", "a.dlt:99999999999:0", "a.dlt:0:99999999999999999999"]],
                   (["show", "--record", stack.topic("presence.locks") + ":0:0"], "not a DLQ topic"),
                   (["show", "--record", r1["record"].rsplit(":", 1)[0] + ":99999"], "no DLQ record"),
                   (["show", "--record", "presence.changes.dlt:0:0"], "not a DLQ topic"),
                   (["show"], "--record"), (["list", "--topic", "nope"], "not an input topic"),
                   (["list", "--format", "xml"], "--format"), (["frobnicate"], "unknown subcommand")]:
        r = ctltest.ctl(stack, "dlq", *a, check=2)
        assert msg in r.stderr, (a, r.stderr)


if __name__ == "__main__":
    pxtest.run(test, "test_ctl_dlq")
