"""pxavro.py - presence's Avro records from Python (Debian's python3-avro),
for tests that produce input records directly to Kafka and read
presence.changes: an implementation independent of the C codec.

Single-object encoding: C3 01, the little-endian CRC-64-AVRO fingerprint of
the schema's Parsing Canonical Form, then the body. The canonical form and
fingerprint helpers are the ones the unit interop test checks against the C
codec (tests/unit/avro_interop.py)."""
import io
import json
import os
import struct
import sys
import warnings

import avro.io
import avro.schema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "unit"))
import avro_interop  # noqa: E402  (crc64_avro, fix_primitives, to_avro_datum)

SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")
NAMES = {"presence": "PresenceEvent", "lock": "LockEvent", "lifecycle": "LifecycleEvent",
         "change": "ChangeEvent"}


class Codec:
    def __init__(self):
        self.schemas, self.fps, self.by_fp = {}, {}, {}
        for kind, name in NAMES.items():
            with open(os.path.join(SCHEMA_DIR, name + ".avsc")) as f:
                schema = avro.schema.parse(f.read())
            pcf = json.dumps(avro_interop.fix_primitives(json.loads(schema.canonical_form)),
                             separators=(",", ":"))
            fp = avro_interop.crc64_avro(pcf.encode())
            self.schemas[kind], self.fps[kind], self.by_fp[fp] = schema, fp, kind

    def encode(self, kind, values):
        """values: field -> value (ts as ms; absent optionals may be left out)."""
        schema = self.schemas[kind]
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            avro.io.DatumWriter(schema).write(avro_interop.to_avro_datum(schema, values),
                                              avro.io.BinaryEncoder(buf))
        return b"\xc3\x01" + struct.pack("<Q", self.fps[kind]) + buf.getvalue()

    def decode(self, data):
        """-> (kind, dict with ts as ms)."""
        assert data[:2] == b"\xc3\x01", data[:2]
        kind = self.by_fp[struct.unpack("<Q", data[2:10])[0]]
        schema = self.schemas[kind]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[10:])))
        return kind, {k: avro_interop.ms_of(v) for k, v in d.items()}
