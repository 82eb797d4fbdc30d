/*
 * gw_kafka.c - the gateway's Kafka producer on the libuv loop.
 *
 * Idempotent producer, partitioner murmur2_random (Java's default, as every
 * producer of presence must use, so one entity's records of all topics share
 * a partition number), small linger for latency. Delivery reports and
 * errors are served from the main queue, wired into the loop by
 * px_kafka_uv. `kafka_up` follows librdkafka's view of the brokers and
 * feeds /readyz.
 */
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_produce.h"

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
    gw_ctx_t *gw = opaque;
    int64_t us = m->err ? -1 : rd_kafka_message_latency(m);
    if (us >= 0) px_hist_observe(gw->m_delivery[m->rkt == gw->rkt_locks], (double)us / 1e6);
    if (m->err) {
        px_counter_add(gw->m_kafka_err, 1);
        PX_WARN(GW_COMP, "kafka delivery failed", "topic=%s err=\"%s\"",
                rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    gw_ctx_t *gw = opaque;
    px_counter_add(gw->m_kafka_err, 1);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) gw->kafka_up = false;
    PX_WARN(GW_COMP, "kafka error", "err=%s reason=\"%s\"", rd_kafka_err2name(err), reason);
}

/* Any successful broker exchange marks Kafka up again. */
static void on_poll(void *arg) {
    gw_ctx_t *gw = arg;
    rd_kafka_poll(gw->rk, 0);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    gw_ctx_t *gw = opaque;
    /* brokers in state UP appear as "state":"UP" in the stats */
    gw->kafka_up = strstr(json, "\"state\":\"UP\"") != NULL;
    return 0;
}

int gw_kafka_start(gw_ctx_t *gw, char *errstr, size_t errstr_size) {
    static const char *const defaults[][2] = {
        {"bootstrap.servers", "127.0.0.1:9092"},
        {"linger.ms", "1"}, /* latency first: a LOCK waits for its ACK */
        {"statistics.interval.ms", "1000"}, /* broker state for /readyz */
    };
    rd_kafka_conf_t *conf = px_kafka_conf_new_with(defaults, sizeof defaults / sizeof defaults[0],
                                                   &gw->kafka_kv, gw->cfg.gateway_id, errstr,
                                                   errstr_size);
    if (!conf) return PX_ECONFIG;
    /* Defaults the user's kafka.* may not override: they are the contract. */
    static const char *fixed[][2] = {
        {"partitioner", "murmur2_random"},
        {"enable.idempotence", "true"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (px_kafka_conf_set(conf, fixed[i][0], fixed[i][1], errstr, errstr_size)) {
            rd_kafka_conf_destroy(conf);
            return PX_ECONFIG;
        }
    rd_kafka_conf_set_opaque(conf, gw);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_stats_cb(conf, stats_cb);
    gw->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!gw->rk) {
        rd_kafka_conf_destroy(conf);
        return PX_ECONFIG;
    }
    snprintf(gw->topic_hb, sizeof gw->topic_hb, "%s%s", gw->cfg.topic_prefix,
             gw->cfg.topic_heartbeats);
    snprintf(gw->topic_locks, sizeof gw->topic_locks, "%s%s", gw->cfg.topic_prefix,
             gw->cfg.topic_locks);
    gw->rkt_hb = rd_kafka_topic_new(gw->rk, gw->topic_hb, NULL);
    gw->rkt_locks = rd_kafka_topic_new(gw->rk, gw->topic_locks, NULL);
    if (!gw->rkt_hb || !gw->rkt_locks)
        return px_errf(PX_ECONFIG, errstr, errstr_size, "cannot create topic handles: %s",
                       rd_kafka_err2str(rd_kafka_last_error()));
    gw->rkqu = rd_kafka_queue_get_main(gw->rk);
    gw->rk_uv = px_kafka_uv_start(gw->loop, gw->rkqu, 100, on_poll, gw);
    if (!gw->rk_uv) return px_errf(PX_EIO, errstr, errstr_size, "cannot watch the kafka queue");
    PX_INFO(GW_COMP, "kafka producer started", "heartbeats=%s locks=%s", gw->topic_hb, gw->topic_locks);
    return 0;
}

void gw_kafka_unwatch(gw_ctx_t *gw) {
    px_kafka_uv_stop(gw->rk_uv);
    gw->rk_uv = NULL;
    if (gw->rkqu) rd_kafka_queue_destroy(gw->rkqu);
    gw->rkqu = NULL;
}

void gw_kafka_stop(gw_ctx_t *gw) {
    if (!gw->rk) return;
    gw_kafka_unwatch(gw);
    rd_kafka_resp_err_t err = rd_kafka_flush(gw->rk, 5000);
    if (err) PX_WARN(GW_COMP, "kafka flush incomplete", "err=%s left=%d", rd_kafka_err2name(err),
                     rd_kafka_outq_len(gw->rk));
    if (gw->rkt_hb) rd_kafka_topic_destroy(gw->rkt_hb);
    if (gw->rkt_locks) rd_kafka_topic_destroy(gw->rkt_locks);
    gw->rkt_hb = gw->rkt_locks = NULL;
    rd_kafka_destroy(gw->rk);
    gw->rk = NULL;
}

int gw_kafka_publish(gw_ctx_t *gw, const px_event_t *ev) {
    char errstr[256];
    char key[PX_KEY_MAX + 1];
    int kl = px_key_format(&ev->key, key, sizeof key);
    rd_kafka_topic_t *rkt = ev->kind == PX_KIND_LOCK ? gw->rkt_locks : gw->rkt_hb;
    px_buf_reset(&gw->scratch);
    if (px_avro_encode(gw->avro, ev, &gw->scratch, errstr, sizeof errstr)) {
        px_counter_add(gw->m_errors, 1);
        PX_ERROR(GW_COMP, "avro encode failed", "err=\"%s\"", errstr);
        return PX_EINVAL;
    }
    /* on the loop thread: a full queue is waited for 30 ms at most */
    px_produce_rec_t r = {.rkt = rkt, .partition = RD_KAFKA_PARTITION_UA, .key = key, .klen = (size_t)kl,
                          .val = gw->scratch.data, .vlen = gw->scratch.len};
    rd_kafka_resp_err_t err = px_produce(gw->rk, &r, 3, 10, NULL);
    if (!err) return 0;
    px_counter_add(gw->m_kafka_err, 1);
    PX_WARN(GW_COMP, "kafka produce failed", "topic=%s err=%s", rd_kafka_topic_name(rkt), rd_kafka_err2name(err));
    return PX_EBACKEND;
}

bool gw_kafka_writable(const gw_ctx_t *gw) {
    return gw->rk && gw->kafka_up;
}
