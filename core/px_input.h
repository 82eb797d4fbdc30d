/*
 * px_input.h - how an input record becomes an event: the one rule the
 * processor (which folds it) and presencectl (which replays, verifies and
 * reinjects) share, so a replay folds exactly what the processor folded.
 *
 * A record of input topic src is valid when its value is not empty and
 * decodes (JSON when it begins with '{' on the two lifecycle topics,
 * px_lcjson.h; Avro otherwise, px_avro.h), the event's kind is the
 * topic's (px_input_kind), and the record key is the event's
 * tenant:entity:id. A record the rule refuses is poison: the processor
 * dead-letters it, presencectl counts and skips it. A record whose schema
 * could not be fetched from the registry is not refused but undecided
 * (PX_INPUT_UNAVAILABLE): the processor retries it, presencectl stops.
 *
 * A record of a retry topic (<topic>.retry) carries the same value and
 * the coordinates it was first consumed at in px.* headers (px_headers.h);
 * px_input_retry_origin reads them.
 */
#ifndef PX_INPUT_H
#define PX_INPUT_H

#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "px_avro.h"
#include "px_event.h"
#include "px_fold.h"

/* Why a record was refused (0: it was not). */
typedef enum {
    PX_INPUT_OK = 0,
    PX_INPUT_BAD_VALUE, /* empty, does not decode, or the wrong kind for its topic */
    PX_INPUT_BAD_KEY,   /* the record key is not the value's tenant:entity:id */
    PX_INPUT_UNAVAILABLE, /* not decided: the schema of its registry id could not be
                           * fetched now (px_avro_decode's PX_EBACKEND); not poison */
} px_input_fault_t;

/* The event kind of input topic src. */
px_kind_t px_input_kind(px_src_topic_t src);

/* The value of a record of input topic src into ev (kafka_ts: the record's
 * timestamp, the event time of a JSON lifecycle record without one).
 * PX_INPUT_OK, or PX_INPUT_BAD_VALUE with the reason in errstr. */
px_input_fault_t px_input_decode_value(px_avro_t *avro, px_src_topic_t src, const void *val, size_t len,
                                       int64_t kafka_ts, px_event_t *ev, char *errstr, size_t errstr_size);

/* The whole rule: the value, then the key (may be NULL: refused). */
px_input_fault_t px_input_decode(px_avro_t *avro, px_src_topic_t src, const void *key, size_t klen,
                                 const void *val, size_t len, int64_t kafka_ts, px_event_t *ev, char *errstr,
                                 size_t errstr_size);

/* Where a record came from before it went through a retry topic: the
 * offset and timestamp it was first consumed at, its attempt, the
 * wall-clock ms it is due and its entity's sequence number. */
typedef struct px_input_origin {
    int64_t offset, ts, attempt, due, seq;
} px_input_origin_t;

/* The origin of a record read at offset/ts of an input topic itself:
 * its own coordinates, attempt 0, due now, no sequence. */
static inline px_input_origin_t px_input_origin_here(int64_t offset, int64_t ts) {
    px_input_origin_t o = {offset, ts, 0, 0, 0};
    return o;
}

/* The origin of a retry record from its headers h (may be NULL). 0, or
 * PX_EINVAL (a header missing or not a number, a negative offset or
 * attempt) with the reason in errstr. */
int px_input_retry_origin(const rd_kafka_headers_t *h, px_input_origin_t *o, char *errstr, size_t errstr_size);

#endif
