/*
 * test_kafka.c - px_kafka: conf building with librdkafka's own errors, log
 * routing into px_log, and the libuv bridge of a queue's IO event.
 *
 * No broker: the producer points at 127.0.0.1:1 (nothing listens), so its
 * one message times out after message.timeout.ms and the delivery report
 * lands on the main queue; the bridge must wake the loop for it. The
 * bridge's timer period is set far beyond the test's length, so every
 * callback after the first (start-up) one comes from the pipe. librdkafka
 * scans for timed-out messages once a second, so the test takes ~1-2 s.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_kafka.h"
#include "px_log.h"

static void kv_add(px_kvlist_t *l, const char *k, const char *v) {
    snprintf(l->kv[l->n].key, sizeof l->kv[l->n].key, "%s", k);
    snprintf(l->kv[l->n].val, sizeof l->kv[l->n].val, "%s", v);
    l->n++;
}

static void test_conf_ok(void **state) {
    (void)state;
    static px_kvlist_t kv;
    kv.n = 0;
    kv_add(&kv, "bootstrap.servers", "127.0.0.1:9092");
    kv_add(&kv, "acks", "all");
    kv_add(&kv, "linger.ms", "5");
    char err[512] = "";
    rd_kafka_conf_t *conf = px_kafka_conf_new(&kv, "px-test", err, sizeof err);
    assert_non_null(conf);
    char val[64];
    size_t n = sizeof val;
    assert_int_equal(rd_kafka_conf_get(conf, "client.id", val, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "px-test");
    n = sizeof val;
    assert_int_equal(rd_kafka_conf_get(conf, "linger.ms", val, &n), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "5");
    rd_kafka_conf_destroy(conf);

    /* NULL list: defaults only. */
    conf = px_kafka_conf_new(NULL, NULL, err, sizeof err);
    assert_non_null(conf);
    rd_kafka_conf_destroy(conf);
}

static void test_conf_bad(void **state) {
    (void)state;
    static px_kvlist_t kv;
    kv.n = 0;
    kv_add(&kv, "acks", "all");
    kv_add(&kv, "no.such.property", "1");
    char err[512] = "";
    assert_null(px_kafka_conf_new(&kv, "px-test", err, sizeof err));
    assert_non_null(strstr(err, "kafka.no.such.property"));
    assert_non_null(strstr(err, "No such configuration property"));

    kv.n = 0;
    kv_add(&kv, "acks", "maybe");
    assert_null(px_kafka_conf_new(&kv, "px-test", err, sizeof err));
    assert_non_null(strstr(err, "kafka.acks"));

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(px_kafka_conf_set(conf, "linger.ms", "3", err, sizeof err), 0);
    assert_true(px_kafka_conf_set(conf, "bogus.key", "3", err, sizeof err) < 0);
    assert_non_null(strstr(err, "bogus.key"));
    rd_kafka_conf_destroy(conf);
}

typedef struct {
    rd_kafka_t *rk;
    px_kafka_uv_t *bridge;
    uv_timer_t guard;
    int calls;
    int drs;
    rd_kafka_resp_err_t dr_err;
    int timed_out;
} bridge_ctx_t;

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    (void)rk;
    bridge_ctx_t *c = opaque;
    c->drs++;
    c->dr_err = msg->err;
}

static void finish(bridge_ctx_t *c) {
    px_kafka_uv_stop(c->bridge);
    c->bridge = NULL;
    uv_close((uv_handle_t *)&c->guard, NULL);
}

static void on_queue(void *arg) {
    bridge_ctx_t *c = arg;
    c->calls++;
    while (rd_kafka_poll(c->rk, 0) > 0) {
    }
    if (c->drs > 0 && c->bridge) finish(c);
}

static void on_guard(uv_timer_t *t) {
    bridge_ctx_t *c = t->data;
    c->timed_out = 1;
    finish(c);
}

static void test_uv_bridge(void **state) {
    (void)state;
    /* Capture px_log on a non-blocking pipe: librdkafka's threads must
     * never block on a full pipe. */
    int lp[2];
    assert_int_equal(pipe2(lp, O_NONBLOCK | O_CLOEXEC), 0);
    px_log_set_fd(lp[1]);

    static px_kvlist_t kv;
    kv.n = 0;
    kv_add(&kv, "bootstrap.servers", "127.0.0.1:1");
    kv_add(&kv, "message.timeout.ms", "100");
    char err[512] = "";
    rd_kafka_conf_t *conf = px_kafka_conf_new(&kv, "px-test-bridge", err, sizeof err);
    assert_non_null(conf);

    bridge_ctx_t c;
    memset(&c, 0, sizeof c);
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_opaque(conf, &c);
    c.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(c.rk); /* owns conf now */

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(c.rk);
    c.bridge = px_kafka_uv_start(&loop, q, 600000, on_queue, &c);
    assert_non_null(c.bridge);
    assert_int_equal(uv_timer_init(&loop, &c.guard), 0);
    c.guard.data = &c;
    assert_int_equal(uv_timer_start(&c.guard, on_guard, 8000, 0), 0);

    assert_int_equal(rd_kafka_producev(c.rk, RD_KAFKA_V_TOPIC("px_test_bridge"),
                                       RD_KAFKA_V_VALUE("v", 1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);

    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */

    assert_false(c.timed_out);
    assert_int_equal(c.drs, 1);
    assert_int_equal(c.dr_err, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT);
    assert_true(c.calls >= 2); /* start-up timer + at least one pipe wake-up */
    /* Nothing left to deliver. Not outq_len() == 0 at once: it counts
     * queued events too, and librdkafka may queue another (a broker
     * connection error) at any moment; flush serves those and succeeds
     * as soon as the queue is empty. */
    assert_int_equal(rd_kafka_flush(c.rk, 2000), RD_KAFKA_RESP_ERR_NO_ERROR);

    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(c.rk);
    assert_int_equal(rd_kafka_wait_destroyed(5000), 0);

    /* librdkafka's log went through px_log. */
    px_log_set_fd(2);
    close(lp[1]);
    static char logs[65536];
    ssize_t n = read(lp[0], logs, sizeof logs - 1);
    close(lp[0]);
    assert_true(n > 0);
    logs[n] = '\0';
    assert_non_null(strstr(logs, " comp=rdkafka msg=\""));
    assert_non_null(strstr(logs, " facility=\""));
    assert_non_null(strstr(logs, " client=px-test-bridge#producer-"));
}

static void test_uv_stop_before_run(void **state) {
    (void)state;
    char err[512];
    rd_kafka_conf_t *conf = px_kafka_conf_new(NULL, "px-test-stop", err, sizeof err);
    assert_non_null(conf);
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", err, sizeof err),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(rk);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
    px_kafka_uv_t *k = px_kafka_uv_start(&loop, q, 10, NULL, NULL);
    assert_non_null(k);
    px_kafka_uv_stop(k); /* before the loop ever ran: cb never called */
    px_kafka_uv_stop(NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    assert_int_equal(rd_kafka_wait_destroyed(5000), 0);
}

/* px_kafka_header_int: header values are input (retry and DLQ records). */
static void test_header_int(void **state) {
    (void)state;
    static const struct {
        const char *val; /* NULL: header absent */
        size_t len;      /* 0: strlen(val) */
        int rc;
        int64_t want;
    } rows[] = {
        {"0", 0, 0, 0},
        {"42", 0, 0, 42},
        {"-1", 0, 0, -1},
        {"9223372036854775807", 0, 0, INT64_MAX},
        {"-9223372036854775807", 0, 0, -INT64_MAX},
        {"9223372036854775808", 0, PX_EINVAL, 0},   /* overflow */
        {"99999999999999999999", 0, PX_EINVAL, 0},  /* 20 digits */
        {"", 0, PX_EINVAL, 0},
        {"-", 0, PX_EINVAL, 0},
        {"+1", 0, PX_EINVAL, 0},
        {" 1", 0, PX_EINVAL, 0},
        {"1 ", 0, PX_EINVAL, 0},
        {"\t1", 0, PX_EINVAL, 0},
        {"1x", 0, PX_EINVAL, 0},
        {"0x10", 0, PX_EINVAL, 0},
        {"--1", 0, PX_EINVAL, 0},
        {"1e3", 0, PX_EINVAL, 0},
        {"1\0" "2", 3, PX_EINVAL, 0},               /* embedded NUL */
        {"12345", 2, 0, 12},                        /* not NUL-terminated: only len bytes count */
        {NULL, 0, PX_EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(2);
        rd_kafka_header_add(h, "other", -1, "7", -1);
        if (rows[i].val)
            rd_kafka_header_add(h, "px.n", -1, rows[i].val,
                                rows[i].len ? (ssize_t)rows[i].len : (ssize_t)strlen(rows[i].val));
        int64_t out = 12345;
        int rc = px_kafka_header_int(h, "px.n", &out);
        if (rc != rows[i].rc || (rc == 0 && out != rows[i].want))
            fail_msg("row %zu (\"%s\"): rc %d out %lld", i, rows[i].val ? rows[i].val : "(absent)", rc,
                     (long long)out);
        if (rc) assert_int_equal(out, 12345); /* untouched on failure */
        rd_kafka_headers_destroy(h);
    }
    /* the last header of a name wins; no headers at all is absent */
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "px.n", -1, "1", -1);
    rd_kafka_header_add(h, "px.n", -1, "2", -1);
    int64_t out = 0;
    assert_int_equal(px_kafka_header_int(h, "px.n", &out), 0);
    assert_int_equal(out, 2);
    rd_kafka_headers_destroy(h);
    assert_int_equal(px_kafka_header_int(NULL, "px.n", &out), PX_EINVAL);
}

/* Some broker UP in librdkafka's statistics; anything else (absent,
 * other states, wrong types, lowercase, the consumer group's own "state")
 * is not. */
static void test_stats_broker_up(void **state) {
    (void)state;
    static const struct {
        const char *json;
        bool up;
    } rows[] = {
        {"{\"brokers\":{\"b1\":{\"state\":\"UP\"}}}", true},
        {"{\"brokers\":{\"b1\":{\"state\":\"DOWN\"},\"b2\":{\"state\":\"UP\"}}}", true},
        {"{\"brokers\":{\"b1\":{\"state\":\"DOWN\"},\"b2\":{\"state\":\"INIT\"}}}", false},
        {"{\"brokers\":{}}", false},
        {"{}", false},
        {"{\"brokers\":[{\"state\":\"UP\"}]}", false},
        {"{\"brokers\":\"UP\"}", false},
        {"{\"brokers\":{\"b1\":{\"state\":\"up\"}}}", false},
        {"{\"brokers\":{\"b1\":{\"state\":1}}}", false},
        {"{\"brokers\":{\"b1\":\"UP\"}}", false},
        {"{\"cgrp\":{\"state\":\"UP\"},\"brokers\":{\"b1\":{\"state\":\"CONNECT\"}}}", false},
        {"[]", false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        json_t *j = json_loads(rows[i].json, 0, NULL);
        assert_non_null(j);
        if (px_kafka_stats_broker_up(j) != rows[i].up) fail_msg("row %zu: %s", i, rows[i].json);
        json_decref(j);
    }
    assert_false(px_kafka_stats_broker_up(NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_ok),
        cmocka_unit_test(test_conf_bad),
        cmocka_unit_test(test_header_int),
        cmocka_unit_test(test_stats_broker_up),
        cmocka_unit_test(test_uv_bridge),
        cmocka_unit_test(test_uv_stop_before_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
