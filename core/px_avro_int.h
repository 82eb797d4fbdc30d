/*
 * px_avro_int.h - internals of the Avro codec shared with its tests and
 * tools (not part of the public API in px_avro.h).
 *
 * The hot decode path (px_avro_decode) reads the body with a hand-written,
 * bounded, allocation-free decoder. px_avro_decode_avroc() reads the same
 * body with avro-c's generic value API instead, after the bounded decoder
 * accepted it (avro-c is not safe on hostile input), so tests can check the
 * two agree on every record. Related: px_avro.c, tests/unit/test_avro.c.
 */
#ifndef PX_AVRO_INT_H
#define PX_AVRO_INT_H

#include "px_avro.h"

/* Single-object header: C3 01 then the 8-byte little-endian fingerprint. */
#define PX_AVRO_HEADER_LEN 10

/* As px_avro_decode(), but the event is extracted from an avro-c generic
 * value read by avro_value_read(). Same errors; out is caller-owned. */
int px_avro_decode_avroc(px_avro_t *c, const void *buf, size_t len, px_event_t *out, char *errstr,
                         size_t errstr_size);

#endif
