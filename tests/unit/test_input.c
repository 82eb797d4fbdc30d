/*
 * test_input.c - the input-record rule the processor and presencectl
 * share (core/px_input.h): each topic's kind, the JSON form only on the
 * lifecycle topics, the key check, and a hostile-input table for values
 * and for a retry record's px.* headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "avro_samples.h"
#include "px_err.h"
#include "px_headers.h"
#include "px_input.h"

static px_avro_t *avro;
static px_buf_t hb, lock; /* an encoded heartbeat and lock */
static const char KEY[] = "acme:invoice:INV-2024.0001_x";
static const char LC_JSON[] = "{\"type\":\"MUTATING\",\"tenant\":\"acme\",\"entity\":\"invoice\","
                              "\"id\":\"INV-2024.0001_x\",\"busy_by\":\"erp\",\"write_id\":\"w1\"}";

static int setup(void **state) {
    (void)state;
    char err[256];
    avro = px_avro_new(err, sizeof err);
    if (!avro) return -1;
    px_event_t ev;
    px_buf_init(&hb, 1 << 16);
    px_buf_init(&lock, 1 << 16);
    px_sample_event(&ev, PX_KIND_PRESENCE, PX_PRES_HB, true);
    if (px_avro_encode(avro, &ev, &hb, err, sizeof err)) return -1;
    px_sample_event(&ev, PX_KIND_LOCK, PX_LOCK_LOCK, true);
    return px_avro_encode(avro, &ev, &lock, err, sizeof err) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    px_buf_term(&hb);
    px_buf_term(&lock);
    px_avro_free(avro);
    return 0;
}

static void test_kinds(void **state) {
    (void)state;
    assert_int_equal(px_input_kind(PX_SRC_HEARTBEATS), PX_KIND_PRESENCE);
    assert_int_equal(px_input_kind(PX_SRC_LOCKS), PX_KIND_LOCK);
    assert_int_equal(px_input_kind(PX_SRC_MUTATING), PX_KIND_LIFECYCLE);
    assert_int_equal(px_input_kind(PX_SRC_MUTATED), PX_KIND_LIFECYCLE);
}

static void test_records(void **state) {
    (void)state;
    static char empty[1];
    static const char garbage[] = "\xc3\x01\x02\x03not a record";
    static const char wrong_key[] = "acme:invoice:other";
    const struct {
        px_src_topic_t src;
        const char *key;
        size_t klen;
        const void *val;
        size_t vlen;
        px_input_fault_t want;
    } cases[] = {
        {PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, NULL, 0, PX_INPUT_BAD_VALUE},
        {PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, empty, 0, PX_INPUT_BAD_VALUE},
        {PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, garbage, sizeof garbage - 1, PX_INPUT_BAD_VALUE},
        {PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, NULL, 1, PX_INPUT_BAD_VALUE},
        {PX_SRC_LOCKS, KEY, sizeof KEY - 1, NULL, 0, PX_INPUT_BAD_VALUE},
        /* JSON only on the lifecycle topics */
        {PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_BAD_VALUE},
        {PX_SRC_MUTATING, KEY, sizeof KEY - 1, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_OK},
        {PX_SRC_MUTATING, KEY, sizeof KEY - 1, LC_JSON, sizeof LC_JSON - 2, PX_INPUT_BAD_VALUE},
        /* the key: exact, present */
        {PX_SRC_MUTATING, NULL, 0, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_BAD_KEY},
        {PX_SRC_MUTATING, wrong_key, sizeof wrong_key - 1, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_BAD_KEY},
        {PX_SRC_MUTATING, KEY, sizeof KEY - 2, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_BAD_KEY},
        {PX_SRC_MUTATING, KEY, sizeof KEY, LC_JSON, sizeof LC_JSON - 1, PX_INPUT_BAD_KEY},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        px_event_t ev;
        char err[256] = "";
        px_input_fault_t f = px_input_decode(avro, cases[i].src, cases[i].key, cases[i].klen, cases[i].val,
                                             cases[i].vlen, 7, &ev, err, sizeof err);
        if (f != cases[i].want) fail_msg("case %zu: fault %d, want %d (%s)", i, (int)f, (int)cases[i].want, err);
        if (f != PX_INPUT_OK && !err[0]) fail_msg("case %zu: no reason given", i);
    }
    /* Avro: each kind on its own topic only, the key checked after the value */
    px_event_t ev;
    char err[256];
    assert_int_equal(px_input_decode(avro, PX_SRC_HEARTBEATS, KEY, sizeof KEY - 1, hb.data, hb.len, 0, &ev, err,
                                     sizeof err),
                     PX_INPUT_OK);
    assert_int_equal(ev.kind, PX_KIND_PRESENCE);
    assert_int_equal(px_input_decode(avro, PX_SRC_LOCKS, KEY, sizeof KEY - 1, hb.data, hb.len, 0, &ev, err, sizeof err),
                     PX_INPUT_BAD_VALUE);
    assert_non_null(strstr(err, "on this topic"));
    assert_int_equal(px_input_decode(avro, PX_SRC_LOCKS, KEY, sizeof KEY - 1, lock.data, lock.len, 0, &ev, err,
                                     sizeof err),
                     PX_INPUT_OK);
    assert_int_equal(px_input_decode(avro, PX_SRC_MUTATED, KEY, sizeof KEY - 1, lock.data, lock.len, 0, &ev, err,
                                     sizeof err),
                     PX_INPUT_BAD_VALUE);
    assert_int_equal(px_input_decode(avro, PX_SRC_LOCKS, "x", 1, lock.data, lock.len, 0, &ev, err, sizeof err),
                     PX_INPUT_BAD_KEY);
    /* the JSON form takes the record's timestamp when it has none */
    assert_int_equal(px_input_decode_value(avro, PX_SRC_MUTATING, LC_JSON, sizeof LC_JSON - 1, 1234, &ev, err,
                                           sizeof err),
                     PX_INPUT_OK);
    assert_int_equal(ev.ts_ms, 1234);
    /* every prefix of a valid Avro value is refused, never read past */
    for (size_t n = 0; n < hb.len; n++) {
        char copy[1 << 12];
        assert_true(hb.len <= sizeof copy);
        memcpy(copy, hb.data, n);
        assert_int_not_equal(px_input_decode_value(avro, PX_SRC_HEARTBEATS, copy, n, 0, &ev, err, sizeof err),
                             PX_INPUT_OK);
    }
}

/* A retry record's origin: every px.* header must be there and a number;
 * offset and attempt not negative. */
static void test_retry_origin(void **state) {
    (void)state;
    static const char *const names[] = {PX_HDR_OFFSET, PX_HDR_TIMESTAMP, PX_HDR_ATTEMPT, PX_HDR_DUE, PX_HDR_SEQ};
    static const char *const good[] = {"41", "1700000000000", "2", "1700000009000", "7"};
    static const struct {
        int header;      /* which header is changed (-1: none) */
        const char *val; /* NULL: left out */
        int rc;
    } cases[] = {
        {-1, "", 0},  {0, NULL, PX_EINVAL}, {1, NULL, PX_EINVAL}, {2, NULL, PX_EINVAL}, {3, NULL, PX_EINVAL},
        {4, NULL, PX_EINVAL}, {0, "-1", PX_EINVAL}, {2, "-3", PX_EINVAL}, {0, "4x", PX_EINVAL},
        {1, "", PX_EINVAL},   {3, "99999999999999999999", PX_EINVAL}, {4, " 7", PX_EINVAL},
        {0, "0", 0},          {3, "-5", 0}, /* a due time in the past is simply due */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(8);
        for (int k = 0; k < 5; k++) {
            const char *v = k == cases[i].header ? cases[i].val : good[k];
            if (v) rd_kafka_header_add(h, names[k], -1, v, -1);
        }
        px_input_origin_t o = px_input_origin_here(5, 6);
        char err[128] = "";
        int rc = px_input_retry_origin(h, &o, err, sizeof err);
        if (rc != cases[i].rc) fail_msg("case %zu: rc %d, want %d", i, rc, cases[i].rc);
        if (rc == 0 && cases[i].header < 0) {
            assert_int_equal(o.offset, 41);
            assert_int_equal(o.ts, 1700000000000LL);
            assert_int_equal(o.attempt, 2);
            assert_int_equal(o.due, 1700000009000LL);
            assert_int_equal(o.seq, 7);
        }
        rd_kafka_headers_destroy(h);
    }
    px_input_origin_t o = px_input_origin_here(5, 6);
    char err[128];
    assert_int_equal(px_input_retry_origin(NULL, &o, err, sizeof err), PX_EINVAL); /* no headers at all */
    o = px_input_origin_here(9, 10);
    assert_int_equal(o.offset, 9);
    assert_int_equal(o.ts, 10);
    assert_int_equal(o.attempt, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_records),
        cmocka_unit_test(test_retry_origin),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
