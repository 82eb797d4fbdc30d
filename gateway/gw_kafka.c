/*
 * gw_kafka.c - the gateway's Kafka producer on the libuv loop.
 *
 * Idempotent producer, partitioner murmur2_random (Java's default, as every
 * producer of presence must use, so one entity's records of all topics share
 * a partition number), small linger for latency. Delivery reports and
 * errors are served from the main queue, wired into the loop by
 * px_kafka_uv. `kafka_up` follows librdkafka's view of the brokers and
 * feeds /readyz.
 *
 * A fatal error (librdkafka 2.0's idempotent producer raises one when a
 * partition leader's loss desynchronises its sequence numbers with the
 * broker: OUT_OF_ORDER_SEQUENCE_NUMBER) leaves the producer unable to send
 * anything again. The gateway then refuses writes (UNAVAILABLE, /readyz
 * kafka=down), drops that producer with what it still held, and makes a
 * new one on the loop, retried every second until it starts.
 */
#include <string.h>

#include "gw.h"
#include "px_log.h"
#include "px_produce.h"
#include "px_time.h"

static void gw_kafka_renew_cb(uv_timer_t *t);

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
    if (err == RD_KAFKA_RESP_ERR__FATAL && !gw->kafka_fatal) {
        char why[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof why);
        gw->kafka_fatal = true;
        PX_ERROR(GW_COMP, "kafka producer failed for good: making a new one", "err=%s reason=\"%s\"",
                 rd_kafka_err2name(orig), why);
        if (!gw->stopping) uv_timer_start(&gw->kafka_renew, gw_kafka_renew_cb, 0, 0);
        return;
    }
    PX_WARN(GW_COMP, "kafka error", "err=%s reason=\"%s\"", rd_kafka_err2name(err), reason);
}

/* Any successful broker exchange marks Kafka up again. */
static void on_poll(void *arg) {
    gw_ctx_t *gw = arg;
    if (gw->kafka_fault_at && px_mono_ms() >= gw->kafka_fault_at) {
        gw->kafka_fault_at = 0;
        rd_kafka_test_fatal_error(gw->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "fault.kafka_fatal_ms");
    }
    rd_kafka_poll(gw->rk, 0);
}

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque) {
    gw_ctx_t *gw = opaque;
    json_t *stats = json_loads(json, 0, NULL); /* NUL-terminated; len may count the NUL */
    gw->kafka_up = stats && px_kafka_stats_broker_up(stats);
    json_decref(stats);
    return 0;
}

/* Let go of the producer: its queue's watcher, its topics, itself (what
 * it still held is dropped: after a fatal error it could not be sent). */
static void producer_drop(gw_ctx_t *gw, bool purge) {
    px_kafka_uv_stop(gw->rk_uv);
    gw->rk_uv = NULL;
    if (gw->rkqu) rd_kafka_queue_destroy(gw->rkqu);
    gw->rkqu = NULL;
    if (!gw->rk) return;
    if (purge) rd_kafka_purge(gw->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (gw->rkt_hb) rd_kafka_topic_destroy(gw->rkt_hb);
    if (gw->rkt_locks) rd_kafka_topic_destroy(gw->rkt_locks);
    gw->rkt_hb = gw->rkt_locks = NULL;
    rd_kafka_destroy(gw->rk);
    gw->rk = NULL;
}

static void gw_kafka_renew_cb(uv_timer_t *t) {
    gw_ctx_t *gw = t->data;
    char errstr[512];
    if (gw->stopping) return;
    producer_drop(gw, true);
    gw->kafka_up = false;
    if (gw_kafka_start(gw, errstr, sizeof errstr)) {
        px_counter_add(gw->m_kafka_err, 1);
        PX_ERROR(GW_COMP, "kafka producer not made: retrying in 1 s", "err=\"%s\"", errstr);
        producer_drop(gw, false);
        uv_timer_start(&gw->kafka_renew, gw_kafka_renew_cb, 1000, 0);
        return;
    }
    gw->kafka_fatal = false;
}

int gw_kafka_start(gw_ctx_t *gw, char *errstr, size_t errstr_size) {
    if (!gw->kafka_renew_init) {
        uv_timer_init(gw->loop, &gw->kafka_renew);
        gw->kafka_renew.data = gw;
        gw->kafka_renew_init = true;
        if (gw->cfg.fault_kafka_fatal_ms) gw->kafka_fault_at = px_mono_ms() + gw->cfg.fault_kafka_fatal_ms;
    }
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
    if (gw->kafka_renew_init && !uv_is_closing((uv_handle_t *)&gw->kafka_renew)) {
        uv_timer_stop(&gw->kafka_renew);
        uv_close((uv_handle_t *)&gw->kafka_renew, NULL);
    }
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
    if (!gw->rk || gw->kafka_fatal) return PX_EBACKEND; /* a new producer is being made */
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
    return gw->rk && gw->kafka_up && !gw->kafka_fatal;
}
