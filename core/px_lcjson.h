/*
 * px_lcjson.h - LifecycleEvent from JSON, so an application's write pipeline
 * can mark records stale without an Avro library:
 *
 *   {"type":"MUTATING","tenant":"acme","entity":"order","id":"42",
 *    "busy_by":"erp-sync","write_id":"w-981","ts":1700000000000}
 *   {"type":"MUTATED","tenant":"acme","entity":"order","id":"42",
 *    "write_id":"w-981","version":17}
 *
 * `busyBy` is accepted for `busy_by`. `ts` is optional: without it the
 * record's Kafka timestamp is used (it is in the log, so a replay sees the
 * same). Strict like every decoder here: one object, no duplicate keys,
 * known keys with the right JSON type and bounds, at most
 * PX_LCJSON_MAX_BYTES; unknown keys are ignored. EXPIRE is the processor's
 * own record type and is refused in JSON. docs/schemas.md.
 */
#ifndef PX_LCJSON_H
#define PX_LCJSON_H

#include <stddef.h>
#include <stdint.h>

#include "px_event.h"

#define PX_LCJSON_MAX_BYTES 4096

/* Decode buf[0..len) into ev (kind PX_KIND_LIFECYCLE), using fallback_ts_ms
 * when the JSON has no ts. The result has passed px_event_validate().
 * Returns 0, PX_EPROTO (not a JSON object) or PX_EINVAL (bad field), with
 * the reason in errstr. */
int px_lcjson_decode(const char *buf, size_t len, int64_t fallback_ts_ms, px_event_t *ev, char *errstr,
                     size_t errstr_size);

#endif
