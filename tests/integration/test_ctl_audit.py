#!/usr/bin/python3
"""presencectl audit: a scripted scenario on one entity (every change type:
join, update, lock grant/deny/release/expiry, stale set/cleared, version,
leave, time-out), another entity of the tenant and a poison record are
produced with fixed event times by python3-avro; the audit's timeline must
match the expected one exactly (type, user, tab, field, detail, source
topic and offset, event time), in event-time order, for --entity, --user,
--from/--to, --tenant and the three formats. The table stays aligned
with ids far longer than its header (a 120-character tab id, a long user
and field, UTF-8, a control character): every cell starts in its header's
column and holds exactly its value."""
import csv
import io
import json

import ctltest
import pxavro
import pxtest

T0 = 1700000000000
ALICE = 'Alice "Al", Jr.\u00e9'  # quotes, a comma and UTF-8: JSON and CSV escaping


async def test(stack):
    codec = pxavro.Codec()
    tenant = pxtest.unique("t")
    prod = stack.producer()
    key = f"{tenant}:order:A1"
    offsets = {}

    def send(topic, kind, k, i, eid="A1", **v):
        v.update(tenant=tenant, entity="order", id=eid, ts=T0 + k)
        prod.produce(stack.topic(topic), key=f"{tenant}:order:{eid}", value=codec.encode(kind, v),
                     on_delivery=lambda err, msg: offsets.__setitem__(i, (msg.partition(), msg.offset())))
        prod.flush(10)  # one at a time: offsets in this order

    hb, lk = "presence.heartbeats", "presence.locks"
    who = dict(status="ONLINE", dirty=False)
    send(hb, "presence", 0, "s1", type="SUB", tab_id="ta", user_id="alice", user_name=ALICE, mode="EDIT", **who)
    send(hb, "presence", 500, "c1", eid="B2", type="SUB", tab_id="tc", user_id="carol", user_name="Carol",
         mode="VIEW", **who)
    send(hb, "presence", 1000, "s2", type="SUB", tab_id="tb", user_id="bob", user_name="Bob", mode="VIEW", **who)
    send(lk, "lock", 2000, "l1", type="LOCK", field="amount", tab_id="ta", user_id="alice", user_name=ALICE,
         request_id="r1")
    send(lk, "lock", 3000, "l2", type="LOCK", field="amount", tab_id="tb", user_id="bob", user_name="Bob",
         request_id="r2")
    send(hb, "presence", 4000, "h1", type="HB", tab_id="tb", user_id="bob", user_name="Bob", mode="EDIT", **who)
    send(lk, "lock", 5000, "l3", type="UNLOCK", field="amount", tab_id="ta", user_id="alice", user_name=ALICE,
         request_id="r3")
    send("core.entities.lifecycle.mutating", "lifecycle", 6000, "m1", type="MUTATING", write_id="w1",
         busy_by="erp")
    send("core.entities.lifecycle.mutated", "lifecycle", 7000, "m2", type="MUTATED", write_id="w1", version=7)
    send(hb, "presence", 8000, "u1", type="UNSUB", tab_id="tb", user_id="bob", user_name="Bob", mode="EDIT", **who)
    send(lk, "lock", 9000, "l4", type="LOCK", field="notes", tab_id="ta", user_id="alice", user_name=ALICE,
         request_id="r4")
    send(hb, "presence", 61000, "x1", type="EXPIRE", tab_id="ta", user_id="alice", user_name=ALICE,
         mode="EDIT", expires_at_ms=T0 + 60000, **who)
    send(lk, "lock", 130000, "x2", type="EXPIRE", field="notes", tab_id="ta", user_id="alice",
         user_name=ALICE, expires_at_ms=T0 + 129000)
    prod.produce(stack.topic(hb), key=key, value=b"\xc3\x01garbage")  # poison: skipped, as by the processor
    prod.flush(10)

    def src(i, topic):
        p, o = offsets[i]
        return {"topic": stack.topic(topic), "partition": p, "offset": o}

    def row(k, typ, i, topic, eid="A1", **extra):
        r = {"ts": T0 + k, "key": f"{tenant}:order:{eid}", "type": typ, "src": src(i, topic)}
        r.update(extra)
        return r

    A = dict(user="alice", user_name=ALICE, tab="ta")
    B = dict(user="bob", user_name="Bob", tab="tb")
    expected = [
        row(0, "JOINED", "s1", hb, **A),
        row(1000, "JOINED", "s2", hb, **B),
        row(2000, "LOCK_GRANTED", "l1", lk, **A, field="amount", request_id="r1", token=offsets["l1"][1]),
        row(3000, "LOCK_DENIED", "l2", lk, **B, field="amount", request_id="r2", holder="alice",
            holder_name=ALICE),
        row(4000, "UPDATED", "h1", hb, **B),
        row(5000, "LOCK_RELEASED", "l3", lk, **A, field="amount", request_id="r3", token=offsets["l1"][1]),
        row(6000, "STALE_SET", "m1", "core.entities.lifecycle.mutating", busy_by="erp"),
        row(7000, "STALE_CLEARED", "m2", "core.entities.lifecycle.mutated"),
        row(7000, "VERSION_BUMPED", "m2", "core.entities.lifecycle.mutated", version=7),
        row(8000, "LEFT", "u1", hb, **B),
        row(9000, "LOCK_GRANTED", "l4", lk, **A, field="notes", request_id="r4", token=offsets["l4"][1]),
        row(61000, "TIMED_OUT", "x1", hb, **A),
        row(130000, "LOCK_EXPIRED", "x2", lk, **A, field="notes", token=offsets["l4"][1]),
    ]

    def audit(*args, check=0):
        return ctltest.ctl(stack, "audit", *args, check=check)

    def jsonl(*args):
        out = audit(*args, "--format", "jsonl").stdout
        rows = [json.loads(line) for line in out.splitlines()]
        for r in rows:
            assert r.pop("time").startswith("2023-11-14T"), r
        return rows

    got = jsonl("--entity", key)
    assert got == expected, "\n".join(map(str, got)) + "\n--- expected ---\n" + "\n".join(map(str, expected))
    assert jsonl("--entity", key, "--user", "bob") == [r for r in expected if r.get("user") == "bob"]
    assert jsonl("--entity", key, "--from", str(T0 + 5000), "--to", str(T0 + 8000)) == expected[5:9]
    assert jsonl("--entity", key, "--from", "2023-11-14T22:13:25Z", "--to", "2023-11-14T22:13:28Z") == \
        expected[5:9]  # T0 = 2023-11-14T22:13:20Z

    carol = row(500, "JOINED", "c1", hb, eid="B2", user="carol", user_name="Carol", tab="tc")
    text = audit("--tenant", tenant, "--format", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(int(r["ts"]), r["key"], r["type"], r["user"], r["detail"]) for r in rows] == \
        [(e["ts"], e["key"], e["type"], e.get("user", ""),
          {"LOCK_GRANTED": f"token={e.get('token')}", "LOCK_RELEASED": f"token={e.get('token')}",
           "LOCK_EXPIRED": f"token={e.get('token')}", "LOCK_DENIED": "held by alice", "STALE_SET": "busy_by=erp",
           "VERSION_BUMPED": "version=7"}.get(e["type"], "")) for e in [expected[0], carol] + expected[1:]], text
    assert all(int(r["src_offset"]) >= 0 for r in rows)
    assert [r["user_name"] for r in rows if r["user"] == "alice"][:1] == [ALICE], text

    table = audit("--entity", key).stdout.splitlines()
    assert table[0].split() == ["TIME", "ENTITY", "CHANGE", "USER", "TAB", "FIELD", "DETAIL", "SOURCE"], table[0]
    assert len(table) == 1 + len(expected) and "held by alice" in table[4], table
    assert [r.split() for r in audit("--user", "nobody", "--tenant", tenant).stdout.splitlines()] == [table[0].split()]

    # --- the table with long ids: every row's cells start at the header's columns
    t2 = pxtest.unique("t")
    lkey = f"{t2}:order:LONG-ENTITY-ID-{'9' * 40}"
    long_tab, long_user, long_field = "tab-" + "x" * 116, "user-" + "y" * 50, "field." + "z" * 70
    rows_in = [("SUB", "ta", "al", None), ("SUB", long_tab, long_user, None), ("SUB", "t\u00e9\u00e9", "z\u00f6e", None),
               ("SUB", "t\x1b[31m", "esc", None), ("LOCK", "ta", "al", long_field), ("LOCK", long_tab, long_user, "f")]
    for i, (typ, tab, user, field) in enumerate(rows_in):
        v = dict(type=typ, tenant=t2, entity="order", id=lkey.split(":", 2)[2], ts=T0 + i * 1000, tab_id=tab,
                 user_id=user, user_name="N")
        if typ == "SUB":
            v.update(mode="VIEW", status="ONLINE", dirty=False)
        else:
            v.update(field=field, request_id=f"r{i}")
        prod.produce(stack.topic(hb if typ == "SUB" else lk), key=lkey, value=codec.encode(
            "presence" if typ == "SUB" else "lock", v))
    prod.flush(10)
    out = audit("--entity", lkey).stdout
    assert "\x1b" not in out, out  # a control character is shown as '?', never sent to the terminal
    lines = out.splitlines()
    head = lines[0]
    cols = ["TIME", "ENTITY", "CHANGE", "USER", "TAB", "FIELD", "DETAIL", "SOURCE"]
    starts = [head.index(c) for c in cols]
    assert starts == sorted(starts) and head.split() == cols, head
    want = [("JOINED", "al", "ta", "-"), ("JOINED", long_user, long_tab, "-"), ("JOINED", "z\u00f6e", "t\u00e9\u00e9", "-"),
            ("JOINED", "esc", "t?[31m", "-"), ("LOCK_GRANTED", "al", "ta", long_field),
            ("LOCK_GRANTED", long_user, long_tab, "f")]
    assert len(lines) == 1 + len(want), out
    for line, (typ, user, tab, field) in zip(lines[1:], want):
        cells = [line[s:e].rstrip() for s, e in zip(starts, starts[1:] + [len(line)])]
        assert all(line[s - 1] == " " for s in starts[1:]), (line, head)
        assert cells[1:6] == [lkey, typ, user, tab, field], (cells, line, head)
        assert cells[7].startswith(stack.topic(hb if typ == "JOINED" else lk) + "["), cells

    # bad input: a clear message, exit 2
    for args, msg in [(["--entity", "no-colons"], "--entity"), (["--tenant", "a b"], "--tenant"),
                      (["--tenant", tenant, "--from", "yesterday"], "--from"),
                      (["--tenant", tenant, "--from", "now", "--to", "-1h"], "empty time range"),
                      (["--tenant", tenant, "--format", "xml"], "--format"), ([], "give --entity"),
                      (["--entity", key, "--tenant", tenant], "give --entity")]:
        r = audit(*args, check=2)
        assert msg in r.stderr, (args, r.stderr)


if __name__ == "__main__":
    pxtest.run(test, "test_ctl_audit")
