/*
 * px_produce.h - producing one record with backpressure, the same way in
 * every program (the processor's transactions, the gateway's events,
 * presencectl's reinjection).
 */
#ifndef PX_PRODUCE_H
#define PX_PRODUCE_H

#include <librdkafka/rdkafka.h>

#include "px_metrics.h"

/* One record to produce: to rkt when set, else to the topic named topic. */
typedef struct px_produce_rec {
    rd_kafka_topic_t *rkt;
    const char *topic;
    int32_t partition;            /* or RD_KAFKA_PARTITION_UA */
    const void *key, *val;
    size_t klen, vlen;
    rd_kafka_headers_t *hdrs;     /* may be NULL */
} px_produce_rec_t;

/* Produce r (its bytes copied) on rk: while rk's queue is full
 * (ERR__QUEUE_FULL), serve rk's callbacks for poll_ms and try again, at
 * most max_polls times, each wait counted in waits (may be NULL). 0 on
 * success, the headers then librdkafka's; else librdkafka's error, the
 * headers still the caller's. Logs nothing: the caller says what failed. */
rd_kafka_resp_err_t px_produce(rd_kafka_t *rk, const px_produce_rec_t *r, int max_polls, int poll_ms,
                               px_counter_t *waits);

#endif
