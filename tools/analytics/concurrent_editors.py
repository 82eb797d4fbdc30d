#!/usr/bin/python3
"""concurrent_editors.py - an example analytics consumer of presence.changes
(docs/analytics.md): how many users edited each entity at the same time,
per minute of event time.

An *editor* is a user holding at least one field lock: LOCK_GRANTED makes
the user the field's holder, LOCK_RELEASED and LOCK_EXPIRED end it (a
LOCK_DENIED changes nothing). ChangeEvent carries no view/edit mode, so a
lock is the editing signal the changes topic has. For every entity and
every minute in which it had an editor, the script prints the peak number
of concurrent editors in that minute and who they were; a lock held across
minutes without events counts in each of them (up to the last event time
read).

Reads the topic from the beginning to its end as of the start
(read_committed, no group commits), with Debian's python3-confluent-kafka.
Values in Avro single-object encoding (first byte C3) are decoded with
python3-avro, checking each record's schema fingerprint (CRC-64-AVRO of
the Parsing Canonical Form); values in the Confluent wire format (first
byte 00, a schema registry's id) with confluent-kafka's own
AvroDeserializer and the registry given by --registry (it needs fastavro),
read into this release's ChangeEvent schema, so a newer version of the
schema is read as well.

  concurrent_editors.py --bootstrap HOST:PORT [--topic presence.changes]
                        [--schema schemas/ChangeEvent.avsc] [--registry URL]
                        [--json]

Output (CSV, or one JSON object per line with --json):
  minute,entity,peak,editors
  2026-11-22T10:04Z,acme:order:42,2,alice;bob
"""
import argparse
import datetime
import io
import json
import os
import struct
import sys
import time
import warnings

import avro.io
import avro.schema
from confluent_kafka import Consumer, TopicPartition

EMPTY64 = 0xC15D213AA4D7A795
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def crc64_avro(data):
    fp = EMPTY64
    for b in data:
        fp ^= b
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
    return fp


def fix_primitives(node):
    """The Parsing Canonical Form rule python-avro 1.11 misses: {"type":"long"} -> "long"."""
    if isinstance(node, dict):
        if set(node) == {"type"} and node["type"] in PRIMITIVES:
            return node["type"]
        return {k: fix_primitives(v) for k, v in node.items()}
    if isinstance(node, list):
        return [fix_primitives(v) for v in node]
    return node


class ChangeDecoder:
    def __init__(self, path, registry=None):
        with open(path) as f:
            text = f.read()
        self.schema = avro.schema.parse(text)
        self.confluent = None
        if registry:
            from confluent_kafka.schema_registry import SchemaRegistryClient
            from confluent_kafka.schema_registry.avro import AvroDeserializer
            self.confluent = AvroDeserializer(SchemaRegistryClient({"url": registry}), text)
        pcf = json.dumps(fix_primitives(json.loads(self.schema.canonical_form)), separators=(",", ":"))
        self.fingerprint = struct.pack("<Q", crc64_avro(pcf.encode()))
        self.reader = avro.io.DatumReader(self.schema)

    def decode(self, data):
        if data[:1] == b"\x00":
            if not self.confluent:
                raise ValueError("a Confluent wire format record (schema id %d): pass --registry"
                                 % struct.unpack(">I", data[1:5])[0])
            d = self.confluent(data, None)
        elif data[:2] != b"\xc3\x01" or data[2:10] != self.fingerprint:
            raise ValueError("not a ChangeEvent in Avro single-object encoding")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                d = self.reader.read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
        ts = d["ts"]
        if isinstance(ts, datetime.datetime):
            d["ts"] = (ts - EPOCH) // datetime.timedelta(milliseconds=1)
        return d


def read_all(bootstrap, topic, decoder, timeout=30.0):
    """Every committed change of topic up to its current end."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "concurrent-editors", "enable.auto.commit": False,
                  "isolation.level": "read_committed", "enable.partition.eof": True})
    try:
        md = c.list_topics(topic, timeout=timeout)
        if md.topics[topic].error is not None:
            raise SystemExit(f"concurrent_editors: topic {topic}: {md.topics[topic].error}")
        parts = sorted(md.topics[topic].partitions)
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1] for p in parts}
        todo = {p for p in parts if ends[p] > 0}
        c.assign([TopicPartition(topic, p, 0) for p in todo])
        out, idle = [], time.time()
        while todo and time.time() - idle < timeout:
            m = c.poll(0.5)
            if m is None:
                # transaction markers have no message: ask where each partition stands
                for tp in c.position([TopicPartition(topic, p) for p in list(todo)]):
                    if tp.offset >= ends[tp.partition]:
                        todo.discard(tp.partition)
                continue
            idle = time.time()
            if m.error():
                todo.discard(m.partition())
                continue
            if m.offset() < ends[m.partition()]:
                try:
                    out.append(decoder.decode(m.value()))
                except Exception as e:  # noqa: BLE001 - report and go on
                    print(f"concurrent_editors: {topic}[{m.partition()}]@{m.offset()}: {e}", file=sys.stderr)
            if m.offset() + 1 >= ends[m.partition()]:
                todo.discard(m.partition())
        if todo:
            raise SystemExit(f"concurrent_editors: {topic}: no progress for {timeout}s before the end")
        return out
    finally:
        c.close()


def concurrent_editors(changes):
    """[(minute_ms, entity, peak, sorted editors)] ordered by entity, minute."""
    by_entity = {}
    for ch in changes:
        key = f"{ch['tenant']}:{ch['entity']}:{ch['id']}"
        by_entity.setdefault(key, []).append(ch)
    horizon = max((ch["ts"] for ch in changes), default=0) // 60000
    rows = []
    for key in sorted(by_entity):
        holders = {}  # field -> user
        minute, peak, seen = None, 0, set()

        def close(upto):
            nonlocal minute, peak, seen
            if minute is None:
                return
            if peak:
                rows.append((minute * 60000, key, peak, sorted(seen)))
            # minutes without events while someone held a lock
            current = set(holders.values())
            m = minute + 1
            while current and m < upto and m - minute < 24 * 60:
                rows.append((m * 60000, key, len(current), sorted(current)))
                m += 1
            minute, peak, seen = upto, len(current), set(current)

        for ch in sorted(by_entity[key], key=lambda c: c["ts"]):  # stable: log order on ties
            m = ch["ts"] // 60000
            if minute is None:
                minute = m
            elif m != minute:
                close(m)
            t, field, user = ch["type"], ch.get("field"), ch.get("user_id")
            if t == "LOCK_GRANTED":
                holders[field] = user
            elif t in ("LOCK_RELEASED", "LOCK_EXPIRED"):
                holders.pop(field, None)
            editors = set(holders.values())
            seen |= editors
            peak = max(peak, len(editors))
        close(horizon + 1)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="presence.changes")
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--schema", default=os.path.join(here, "..", "..", "schemas", "ChangeEvent.avsc"))
    ap.add_argument("--registry", help="schema registry URL, for records in the Confluent wire format")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    changes = read_all(a.bootstrap, a.topic, ChangeDecoder(a.schema, a.registry))
    rows = concurrent_editors(changes)
    if not a.json:
        print("minute,entity,peak,editors")
    for minute, key, peak, editors in rows:
        when = datetime.datetime.fromtimestamp(minute / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%MZ")
        if a.json:
            print(json.dumps({"minute": when, "minute_ms": minute, "entity": key, "peak": peak, "editors": editors}))
        else:
            print(f"{when},{key},{peak},{';'.join(editors)}")
    print(f"concurrent_editors: {len(changes)} changes, {len(rows)} rows", file=sys.stderr)


if __name__ == "__main__":
    main()
