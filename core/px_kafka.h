/*
 * px_kafka.h - librdkafka glue shared by the programs.
 *
 * Building a rd_kafka_conf_t from the `kafka.*` settings (librdkafka's own
 * error message stops start-up on a bad key), routing librdkafka's log into
 * px_log, and wiring a queue's IO event into a libuv loop so a consumer or
 * producer never needs a thread of its own.
 */
#ifndef PX_KAFKA_H
#define PX_KAFKA_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <uv.h>

#include "px_config.h"

/* New conf with px defaults (log routed to px_log, given client.id), then
 * every kv of `kafka` applied in order. NULL with librdkafka's message in
 * errstr on a bad key or value. */
rd_kafka_conf_t *px_kafka_conf_new(const px_kvlist_t *kafka, const char *client_id,
                                   char *errstr, size_t errstr_size);

/* The same, with defaults[i] = {key, value} applied before the user's
 * settings, so kafka.* overrides them. */
rd_kafka_conf_t *px_kafka_conf_new_with(const char *const (*defaults)[2], size_t ndefaults,
                                        const px_kvlist_t *kafka, const char *client_id,
                                        char *errstr, size_t errstr_size);

/* Set one property or fail with librdkafka's message. */
int px_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
                      size_t errstr_size);

/* The integer value of header `name` (the last one of that name) in h:
 * optional '-' then 1..19 decimal digits, nothing else (headers are input).
 * 0 with *out set, or PX_EINVAL if absent, empty or not such a number. h may
 * be NULL (no headers). */
int px_kafka_header_int(const rd_kafka_headers_t *h, const char *name, int64_t *out);

/* Whether librdkafka's statistics (the JSON its stats callback gets,
 * parsed) list a broker in state UP: some broker is reachable. */
bool px_kafka_stats_broker_up(const json_t *stats);

/* Readiness of a librdkafka queue on a libuv loop: librdkafka writes a byte
 * to a pipe when the queue goes from empty to non-empty; the loop wakes and
 * calls `cb`, which must drain the queue (poll with timeout 0 until empty).
 * A repeating timer (period_ms) also calls cb so quiet handles keep being
 * served. */
typedef struct px_kafka_uv px_kafka_uv_t;
typedef void (*px_kafka_uv_cb)(void *arg);

/* Takes no ownership of rkqu. NULL on failure (logged). */
px_kafka_uv_t *px_kafka_uv_start(uv_loop_t *loop, rd_kafka_queue_t *rkqu, uint64_t period_ms,
                                 px_kafka_uv_cb cb, void *arg);
/* Stop watching and free once libuv has closed the handles. NULL no-op. */
void px_kafka_uv_stop(px_kafka_uv_t *k);

#endif
