/*
 * px_wire.h - how a record value is framed on the presence topics, told
 * apart by its first bytes, so one reader takes every framing a topic may
 * carry:
 *
 *   single-object  C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint
 *                  of the writer schema, then the Avro binary body
 *                  (Avro's own single-object encoding; no registry needed);
 *   confluent      00, the 4-byte big-endian schema id a Confluent-compatible
 *                  schema registry gave the writer schema, then the Avro
 *                  binary body (what Kafka Connect, ksqlDB, Flink's
 *                  avro-confluent format and Confluent's clients read);
 *   json           a JSON object (the lifecycle topics accept it, so a write
 *                  pipeline can produce without Avro): optional blanks, then
 *                  '{'.
 *
 * Parsing is over (buf, len), never reads past len, allocates nothing and
 * does no I/O; it only frames, the body is px_avro's. Related: px_avro.h,
 * px_registry.h, docs/schemas.md.
 */
#ifndef PX_WIRE_H
#define PX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "px_buf.h"

typedef enum {
    PX_WIRE_SINGLE_OBJECT = 0,
    PX_WIRE_CONFLUENT = 1,
    PX_WIRE_JSON = 2
} px_wire_format_t;

#define PX_WIRE_SO_HEADER 10 /* C3 01 + 8-byte fingerprint */
#define PX_WIRE_CF_HEADER 5  /* 00 + 4-byte schema id */

typedef struct px_wire_hdr {
    px_wire_format_t format;
    uint64_t fingerprint; /* single-object only */
    uint32_t schema_id;   /* confluent only */
    size_t body_off;      /* where the Avro body (or the JSON text) starts */
} px_wire_hdr_t;

/* Frame buf[0..len): fills *out and returns 0, or PX_EPROTO with the reason
 * in errstr (empty value, a known magic with a truncated header, a body of
 * zero bytes after an Avro header, or a first byte no framing starts
 * with). A confluent schema id above INT32_MAX is refused: registries hand
 * out non-negative 32-bit ids. */
int px_wire_parse(const void *buf, size_t len, px_wire_hdr_t *out, char *errstr,
                  size_t errstr_size);

/* Append the 5-byte confluent header for schema_id to out. 0 or PX_ENOMEM. */
int px_wire_put_confluent(px_buf_t *out, uint32_t schema_id);

/* "single-object" / "confluent" / "json"; parse the first two back (the
 * configuration's avro.wire_format). px_wire_format_parse returns 0 or
 * PX_ECONFIG. */
const char *px_wire_format_name(px_wire_format_t f);
int px_wire_format_parse(const char *s, px_wire_format_t *out);

#endif
