/*
 * px_produce.c - one record with backpressure (px_produce.h).
 */
#include "px_produce.h"

rd_kafka_resp_err_t px_produce(rd_kafka_t *rk, const px_produce_rec_t *r, int max_polls, int poll_ms,
                               px_counter_t *waits) {
    for (int polls = 0;; polls++) {
        rd_kafka_resp_err_t err =
            r->rkt ? rd_kafka_producev(rk, RD_KAFKA_V_RKT(r->rkt), RD_KAFKA_V_PARTITION(r->partition),
                                       RD_KAFKA_V_KEY(r->key, r->klen), RD_KAFKA_V_VALUE((void *)r->val, r->vlen),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(r->hdrs),
                                       RD_KAFKA_V_END)
                   : rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(r->topic), RD_KAFKA_V_PARTITION(r->partition),
                                       RD_KAFKA_V_KEY(r->key, r->klen), RD_KAFKA_V_VALUE((void *)r->val, r->vlen),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(r->hdrs),
                                       RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || polls >= max_polls) return err;
        if (waits) px_counter_add(waits, 1);
        rd_kafka_poll(rk, poll_ms);
    }
}
