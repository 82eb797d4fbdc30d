#!/usr/bin/python3
"""avro_interop.py - check presence's C Avro codec against python3-avro.

Run by ctest as `avro_interop` (label unit) with Debian's /usr/bin/python3,
which has python3-avro 1.11. It drives tests/unit/avro_dump (the C codec)
and checks, for each schemas/*.avsc:

  (a) Parsing Canonical Form and CRC-64-AVRO fingerprint: python-avro's
      canonical form (with one known python-avro 1.11 bug corrected, see
      below) must equal the C form byte for byte, and a CRC-64-AVRO written
      here from the spec (bit by bit, no table; itself checked against the
      fingerprints in Avro's share/test/data/schema-tests.txt, which Java's
      implementation validates) must equal the C fingerprint.
  (b) C -> python: every sample avro_dump encodes (each kind x type, with
      optional fields present and absent) starts with C3 01 and the right
      little-endian fingerprint, its body decodes with python-avro's
      DatumReader using exactly all bytes, and every field equals the
      values avro_dump says it encoded.
  (c) python -> C: the same values plus seeded random records (random
      Unicode up to the px_event.h bounds, extreme longs) are encoded with
      python-avro's DatumWriter, framed as single objects, and decoded by
      avro_dump with px_avro_decode; the C result must equal the input.
      A few python-made bad records (wrong fingerprint, trailing byte,
      string over its bound, truncated) must be refused with the right code.

python-avro 1.11.1 bug: for a primitive carrying extra attributes, e.g.
{"type":"long","logicalType":"timestamp-millis"}, canonical_form keeps
{"type":"long"} where the spec's PRIMITIVES rule (and Java's
SchemaNormalization) gives "long". We apply that rule to python's output and
say so; everything else in python's form is used as is.
"""
import argparse
import datetime
import glob
import io
import json
import os
import random
import struct
import subprocess
import sys
import warnings

import avro.io
import avro.schema

EMPTY64 = 0xC15D213AA4D7A795
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
KIND_OF_SCHEMA = {"PresenceEvent": "presence", "LockEvent": "lock",
                  "LifecycleEvent": "lifecycle", "ChangeEvent": "change"}
# px_event.h bounds per field (bytes)
BOUNDS = {"tenant": 128, "entity": 128, "id": 128, "tab_id": 128, "user_id": 128, "field": 128,
          "request_id": 128, "write_id": 128, "holder_user_id": 128, "user_name": 256,
          "busy_by": 256, "cursor": 256, "holder_name": 256, "src_topic": 249}
KEY_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def crc64_avro(data):
    """CRC-64-AVRO per the spec, bit by bit (independent of the C table)."""
    fp = EMPTY64
    for b in data:
        fp ^= b
        for _ in range(8):
            fp = (fp >> 1) ^ (EMPTY64 & -(fp & 1))
    return fp


def fix_primitives(node):
    """Apply the PRIMITIVES rule python-avro 1.11 misses ({"type":"long"} -> "long")."""
    if isinstance(node, dict):
        if set(node) == {"type"} and node["type"] in PRIMITIVES:
            return node["type"]
        return {k: fix_primitives(v) for k, v in node.items()}
    if isinstance(node, list):
        return [fix_primitives(v) for v in node]
    return node


def ms_of(v):
    if isinstance(v, datetime.datetime):
        return (v - EPOCH) // datetime.timedelta(milliseconds=1)
    return v


def dt_of(ms):
    return EPOCH + datetime.timedelta(milliseconds=ms)


def is_ts_field(field):
    t = field.type
    if isinstance(t, avro.schema.UnionSchema):
        t = t.schemas[1]
    return t.get_prop("logicalType") == "timestamp-millis"


def to_avro_datum(schema, values):
    """avro_dump's JSON (null for absent) -> a python-avro datum for schema."""
    datum = {}
    for f in schema.fields:
        v = values.get(f.name)
        if v is not None and is_ts_field(f):
            v = dt_of(v)
        datum[f.name] = v
    return datum


def compare(schema, got, expected, what):
    """Field-wise: got (python-avro datum or avro_dump JSON) vs expected JSON."""
    for f in schema.fields:
        g, e = ms_of(got.get(f.name)), expected.get(f.name)
        check(g == e, f"{what}: field {f.name}: got {g!r}, expected {e!r}")


def single_object(fp, body):
    return b"\xc3\x01" + struct.pack("<Q", fp) + body


def py_encode(schema, datum):
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def rand_text(rng, max_bytes):
    """Random Unicode (1-4 byte UTF-8, no NUL, no surrogates) of 1..max_bytes bytes."""
    pools = [(0x20, 0x7E), (0xA0, 0x7FF), (0x800, 0xD7FF), (0xE000, 0xFFFD), (0x10000, 0x10FFFF)]
    out, size = [], 0
    target = rng.choice([1, rng.randint(1, max_bytes), max_bytes])
    while True:
        lo, hi = rng.choice(pools)
        ch = chr(rng.randint(lo, hi))
        n = len(ch.encode())
        if size + n > target:
            break
        out.append(ch)
        size += n
    return "".join(out) or "x"


def rand_values(rng, kind, schema):
    """A random valid event of `kind` as avro_dump-style JSON."""
    types = schema.fields_dict["type"].type.symbols
    v = {"type": rng.choice(types)}
    for part in ("tenant", "entity", "id"):
        v[part] = "".join(rng.choice(KEY_CHARS) for _ in range(rng.randint(1, 128)))
    v["ts"] = rng.choice([1, rng.randint(1, 253402300799999), 253402300799999])  # up to year 9999
    for f in schema.fields[5:]:
        t = f.type
        optional = isinstance(t, avro.schema.UnionSchema)
        if optional and rng.random() < 0.3:
            v[f.name] = None
            continue
        base = t.schemas[1] if optional else t
        if base.type == "string":
            v[f.name] = rand_text(rng, BOUNDS[f.name])
        elif base.type == "enum":
            v[f.name] = rng.choice(base.symbols)
        elif base.type == "boolean":
            v[f.name] = rng.random() < 0.5
        elif base.type == "int":
            v[f.name] = rng.choice([0, rng.randint(0, 2**31 - 1), 2**31 - 1])
        elif is_ts_field(f):
            v[f.name] = rng.choice([0, rng.randint(0, 253402300799999)])
        else:
            v[f.name] = rng.choice([0, rng.randint(0, 2**63 - 1), 2**63 - 1])
    # what px_event_validate requires, so the C side accepts the record
    need = {"presence": ["tab_id", "user_id"], "lock": ["tab_id", "user_id", "field"],
            "lifecycle": [], "change": []}[kind]
    if kind == "change":
        need = ["tab_id", "user_id", "field", "holder_user_id"]
        if v["type"] == "LOCK_GRANTED":
            v["token"] = v.get("token") or 1
        if v["type"] == "VERSION_BUMPED":
            v["version"] = v.get("version") or 1
        src = rng.random() < 0.8
        if src:
            v["src_topic"] = v.get("src_topic") or "presence.locks"
            v["src_partition"] = v.get("src_partition") or 0
            v["src_offset"] = v.get("src_offset") or 0
        else:
            v["src_topic"] = v["src_partition"] = v["src_offset"] = None
    for n in need:
        if v.get(n) is None:
            v[n] = rand_text(rng, BOUNDS[n])
    if v["type"] == "EXPIRE" and v.get("expires_at_ms") is None:
        v["expires_at_ms"] = 1
    return v


def run_dump(dump, *args):
    r = subprocess.run([dump, *args], capture_output=True, check=False)
    if r.returncode != 0:
        sys.exit(f"avro_dump {' '.join(args)} failed ({r.returncode}): {r.stderr.decode()}")
    return r.stdout.decode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--schemas", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--random", type=int, default=200, help="random records per kind")
    args = ap.parse_args()

    # The spec/Java vectors keep our python CRC honest (schema-tests.txt).
    for text, fp in (('"null"', 7195948357588979594), ('"int"', 8247732601305521295),
                     ('{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
                     ('{"type":"map","values":"string"}', -8732877298790414990)):
        check(crc64_avro(text.encode()) == fp % 2**64, f"python CRC-64-AVRO of {text}")
    check(crc64_avro(b"") == EMPTY64, "CRC-64-AVRO of the empty input is EMPTY")

    # (a) canonical forms and fingerprints
    c_forms = {}
    for line in run_dump(args.dump, "schemas").splitlines():
        kind, fp, pcf = line.split("\t", 2)
        c_forms[kind] = (int(fp, 16), pcf)
    schemas, fps = {}, {}
    for path in sorted(glob.glob(os.path.join(args.schemas, "*.avsc"))):
        stem = os.path.splitext(os.path.basename(path))[0]
        kind = KIND_OF_SCHEMA.get(stem)
        check(kind is not None, f"{stem}.avsc is not one of the four known schemas")
        if kind is None:
            continue
        with open(path, encoding="utf-8") as fh:
            schema = avro.schema.parse(fh.read())
        raw = schema.canonical_form
        fixed = json.dumps(fix_primitives(json.loads(raw)), separators=(",", ":"), ensure_ascii=False)
        if fixed != raw:
            print(f"note: {stem}: applied the PRIMITIVES fix to python-avro's canonical form")
        fp = crc64_avro(fixed.encode())
        c_fp, c_pcf = c_forms[kind]
        check(c_pcf == fixed, f"{stem}: canonical form differs\n  C:      {c_pcf}\n  python: {fixed}")
        check(c_fp == fp, f"{stem}: fingerprint C {c_fp:016x} != python {fp:016x}")
        print(f"{stem}: fingerprint {fp:016x} (wire bytes {struct.pack('<Q', fp).hex(' ')})")
        schemas[kind], fps[kind] = schema, fp
    check(len(schemas) == 4, "all four schemas present")

    # (b) C -> python
    os.makedirs(args.workdir, exist_ok=True)
    for old in glob.glob(os.path.join(args.workdir, "*")):
        os.remove(old)
    run_dump(args.dump, "encode", args.workdir)
    c_files = sorted(glob.glob(os.path.join(args.workdir, "*.bin")))
    check(len(c_files) >= 2 * (4 + 3 + 2 + 11), f"avro_dump wrote every sample ({len(c_files)})")
    expected_all = []
    for path in c_files:
        kind = os.path.basename(path).split("_", 1)[0]
        with open(path, "rb") as fh:
            data = fh.read()
        with open(path[:-4] + ".json", encoding="utf-8") as fh:
            expected = json.load(fh)
        expected_all.append((kind, expected))
        name = os.path.basename(path)
        check(data[:2] == b"\xc3\x01", f"{name}: magic")
        check(struct.unpack("<Q", data[2:10])[0] == fps[kind], f"{name}: fingerprint")
        body = io.BytesIO(data[10:])
        got = avro.io.DatumReader(schemas[kind]).read(avro.io.BinaryDecoder(body))
        check(body.tell() == len(data) - 10, f"{name}: python consumed {body.tell()} of {len(data) - 10} bytes")
        compare(schemas[kind], got, expected, f"C->python {name}")

    # (c) python -> C: the samples again, then random records
    rng = random.Random(20240601)
    cases = list(expected_all)
    for kind in sorted(schemas):
        cases += [(kind, rand_values(rng, kind, schemas[kind])) for _ in range(args.random)]
    paths = []
    for i, (kind, values) in enumerate(cases):
        body = py_encode(schemas[kind], to_avro_datum(schemas[kind], values))
        path = os.path.join(args.workdir, f"py_{i:05d}.avro")
        with open(path, "wb") as fh:
            fh.write(single_object(fps[kind], body))
        paths.append(path)
    # split on "\n" only: str.splitlines() also splits on U+2028, U+0085, ...,
    # which random strings contain and JSON does not escape
    out = run_dump(args.dump, "decode", *paths).rstrip("\n").split("\n")
    check(len(out) == len(paths), "avro_dump decoded every python record")
    for (kind, values), line in zip(cases, out):
        got = json.loads(line)
        what = f"python->C {os.path.basename(got['file'])} ({kind} {values['type']})"
        if "error" in got:
            check(False, f"{what}: refused: {got['error']} {got['detail']}")
            continue
        check(got["kind"] == kind, f"{what}: kind {got['kind']}")
        compare(schemas[kind], got, values, what)

    # python-made bad records must be refused with the right code
    kind, values = expected_all[0]
    good = py_encode(schemas[kind], to_avro_datum(schemas[kind], values))
    long_name = dict(values, tab_id="x" * (BOUNDS["tab_id"] + 1))
    bad = {
        "wrong_fp": (single_object(fps[kind] ^ 1, good), "PROTOCOL"),
        "trailing": (single_object(fps[kind], good + b"\x00"), "PROTOCOL"),
        "truncated": (single_object(fps[kind], good[:-1]), "PROTOCOL"),
        "over_bound": (single_object(fps[kind], py_encode(schemas[kind], to_avro_datum(schemas[kind], long_name))),
                       "INVALID"),
        "other_schema": (single_object(fps["change" if kind != "change" else "lock"], good), None),
    }
    bad_paths = []
    for name, (data, _) in bad.items():
        path = os.path.join(args.workdir, f"bad_{name}.avro")
        with open(path, "wb") as fh:
            fh.write(data)
        bad_paths.append(path)
    for (name, (_, code)), line in zip(bad.items(), run_dump(args.dump, "decode", *bad_paths).rstrip("\n").split("\n")):
        got = json.loads(line)
        if code is None:  # body of one schema under another's fingerprint: must not be accepted as equal
            check("error" in got or got.get("kind") != kind, f"bad {name}: accepted as the original")
        else:
            check(got.get("error") == code, f"bad {name}: expected {code}, got {got}")

    n = len(c_files) + len(paths) + len(bad)
    if failures:
        print(f"avro_interop: {len(failures)} failure(s) in {n} records")
        return 1
    print(f"avro_interop: OK: 4 schemas, {len(c_files)} C->python, {len(paths)} python->C, {len(bad)} refused")
    return 0


if __name__ == "__main__":
    sys.exit(main())
