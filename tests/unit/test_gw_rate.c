/*
 * test_gw_rate.c - the gateway's rate limits (gateway/gw_rate.h): the
 * WebSocket token bucket (refill, burst cap, one notice a second, a clock
 * set back, fractional rates) and the REST window table (one window per
 * user, the minute boundary, stale and full probe sequences taken over,
 * a table of one slot, and hostile user names).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw_rate.h"
#include "px_err.h"

#define T0 1700000000000LL /* any start: nothing depends on its value */

/* The bucket starts full: burst messages pass at once, then one is
 * dropped with a notice, the rest of that second silently. */
static void test_bucket_burst(void **state) {
    gw_bucket_t b;
    gw_bucket_init(&b, 40, T0);
    for (int i = 0; i < 40; i++) assert_int_equal(gw_bucket_take(&b, 20, 40, T0), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 20, 40, T0), GW_BUCKET_DROP_NOTIFY);
    for (int i = 0; i < 1000; i++) assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 10), GW_BUCKET_DROP);
    /* 50 ms at 20/s is one token: it passes, the next is dropped silently
     * (the notice was 50 ms ago) */
    assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 50), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 50), GW_BUCKET_DROP);
    /* a second after the notice, the next drop notifies again */
    assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 1000), GW_BUCKET_PASS); /* 19 tokens came meanwhile */
    for (int i = 0; i < 18; i++) assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 1000), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 20, 40, T0 + 1000), GW_BUCKET_DROP_NOTIFY);
}

/* A long silence refills to the burst, never beyond. */
static void test_bucket_cap(void **state) {
    gw_bucket_t b;
    gw_bucket_init(&b, 5, T0);
    for (int i = 0; i < 5; i++) gw_bucket_take(&b, 100, 5, T0);
    int passed = 0;
    for (int i = 0; i < 100; i++) passed += gw_bucket_take(&b, 100, 5, T0 + 3600000) == GW_BUCKET_PASS;
    assert_int_equal(passed, 5);
    /* INT64_MAX ms later: still the burst, no overflow */
    passed = 0;
    for (int i = 0; i < 10; i++) passed += gw_bucket_take(&b, 1000000, 5, INT64_MAX) == GW_BUCKET_PASS;
    assert_int_equal(passed, 5);
}

/* Steady traffic at the rate passes whole; twice the rate passes half. */
static void test_bucket_steady(void **state) {
    gw_bucket_t b;
    gw_bucket_init(&b, 1, T0);
    int passed = 0;
    for (int64_t t = 0; t < 10000; t += 50) passed += gw_bucket_take(&b, 20, 1, T0 + t) == GW_BUCKET_PASS;
    assert_int_equal(passed, 200);
    gw_bucket_init(&b, 1, T0);
    passed = 0;
    for (int64_t t = 0; t < 10000; t += 25) passed += gw_bucket_take(&b, 20, 1, T0 + t) == GW_BUCKET_PASS;
    assert_int_equal(passed, 200);
    /* one message a second: 3 tokens in 3 s at rate 1 */
    gw_bucket_init(&b, 1, T0);
    assert_int_equal(gw_bucket_take(&b, 1, 1, T0), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 1, 1, T0 + 999), GW_BUCKET_DROP_NOTIFY);
    assert_int_equal(gw_bucket_take(&b, 1, 1, T0 + 1000), GW_BUCKET_PASS);
}

/* A clock set back counts as no time passing: no tokens, no second
 * notice; time resumes from the latest instant seen. */
static void test_bucket_clock_back(void **state) {
    gw_bucket_t b;
    gw_bucket_init(&b, 2, T0);
    assert_int_equal(gw_bucket_take(&b, 10, 2, T0), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 10, 2, T0), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 10, 2, T0), GW_BUCKET_DROP_NOTIFY);
    for (int64_t back = 1; back < 100000000; back *= 10)
        assert_int_not_equal(gw_bucket_take(&b, 10, 2, T0 - back), GW_BUCKET_PASS);
    assert_int_equal(gw_bucket_take(&b, 10, 2, T0 - 5000), GW_BUCKET_DROP);
    /* time resumes from the latest refill: 100 ms at 10/s is one token */
    assert_int_equal(gw_bucket_take(&b, 10, 2, T0 + 100), GW_BUCKET_PASS);
}

static gw_windows_t table(size_t n) {
    gw_windows_t t;
    assert_int_equal(gw_windows_init(&t, n, 60000), 0);
    return t;
}

/* limit requests per user per minute; users are counted apart. */
static void test_windows_limit(void **state) {
    gw_windows_t t = table(1024);
    for (int i = 0; i < 3; i++) assert_true(gw_windows_take(&t, "acme:alice", 3, T0 + i));
    assert_false(gw_windows_take(&t, "acme:alice", 3, T0 + 10));
    assert_true(gw_windows_take(&t, "acme:bob", 3, T0 + 10));
    assert_true(gw_windows_take(&t, "other:alice", 3, T0 + 10));
    /* the window is fixed: 59.999 s later still refused, at 60 s a new one */
    assert_false(gw_windows_take(&t, "acme:alice", 3, T0 + 59999));
    for (int i = 0; i < 3; i++) assert_true(gw_windows_take(&t, "acme:alice", 3, T0 + 60000));
    assert_false(gw_windows_take(&t, "acme:alice", 3, T0 + 60000));
    /* a clock set back does not end the window */
    assert_false(gw_windows_take(&t, "acme:alice", 3, T0 - 3600000));
    gw_windows_term(&t);
    gw_windows_term(&t); /* a terminated table is a no-op */
}

/* A table of one slot: every user shares it; a live window of another
 * user is taken over (the limit errs on the loose side), and a user on its
 * own keeps its count. */
static void test_windows_one_slot(void **state) {
    gw_windows_t t = table(1);
    assert_true(gw_windows_take(&t, "a:1", 1, T0));
    assert_false(gw_windows_take(&t, "a:1", 1, T0 + 1));
    assert_true(gw_windows_take(&t, "a:2", 1, T0 + 2)); /* takes the slot over */
    assert_true(gw_windows_take(&t, "a:1", 1, T0 + 3)); /* a fresh window again */
    gw_windows_term(&t);
}

/* Many users in a small table: memory stays the table's, each user is
 * refused past the limit while it keeps its slot, and stale windows are
 * reused before live ones are evicted. */
static void test_windows_full(void **state) {
    gw_windows_t t = table(16);
    char who[64];
    for (int u = 0; u < 1000; u++) {
        snprintf(who, sizeof who, "t:user%d", u);
        assert_true(gw_windows_take(&t, who, 2, T0 + u));
    }
    /* a minute later every window is stale: up to GW_WINDOW_PROBE users
     * (never more than a probe sequence holds) each get a slot of their
     * own, reusing stale ones, and their limit holds */
    for (int u = 0; u < GW_WINDOW_PROBE; u++) {
        snprintf(who, sizeof who, "late:%d", u);
        assert_true(gw_windows_take(&t, who, 2, T0 + 120000));
    }
    int refused = 0;
    for (int u = 0; u < GW_WINDOW_PROBE; u++) {
        snprintf(who, sizeof who, "late:%d", u);
        gw_windows_take(&t, who, 2, T0 + 120001);
        refused += !gw_windows_take(&t, who, 2, T0 + 120002);
    }
    assert_int_equal(refused, GW_WINDOW_PROBE);
    gw_windows_term(&t);
}

/* Hostile user names: empty and over the bound are refused; one at the
 * bound is counted; names differing only past a NUL are one name. */
static void test_windows_hostile(void **state) {
    gw_windows_t t = table(64);
    char big[GW_WINDOW_WHO_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(gw_windows_take(&t, "", 10, T0));
    assert_false(gw_windows_take(&t, big, 10, T0)); /* GW_WINDOW_WHO_MAX + 1 bytes */
    big[GW_WINDOW_WHO_MAX] = '\0';
    assert_true(gw_windows_take(&t, big, 1, T0));
    assert_false(gw_windows_take(&t, big, 1, T0));
    assert_true(gw_windows_take(&t, "a:\xff\xfe\x01\"\\", 1, T0));
    assert_false(gw_windows_take(&t, "a:\xff\xfe\x01\"\\", 1, T0));
    assert_false(gw_windows_take(&t, "a:b", 0, T0)); /* limit 0: nothing passes */
    gw_windows_term(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_burst),     cmocka_unit_test(test_bucket_cap),
        cmocka_unit_test(test_bucket_steady),    cmocka_unit_test(test_bucket_clock_back),
        cmocka_unit_test(test_windows_limit),    cmocka_unit_test(test_windows_one_slot),
        cmocka_unit_test(test_windows_full),     cmocka_unit_test(test_windows_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
