/*
 * test_gw_self.c - the subscriber's own tab in its PRESENCEs
 * (gateway/gw_self.h): merged while the view lacks the tab or holds an
 * older state of it, no longer once the view shows the SUB's fold, the
 * bound honoured only after one merged PRESENCE went out, another user's
 * tab of the same id never taken for it, and a no that stays no.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gw_self.h"

#define TS 1700000000000LL  /* the SUB's ts (wall clock) */
#define MONO 5000000LL      /* the monotonic clock at the SUB */
#define BOUND 10000

static px_view_tab_t tab(const char *tab_id, const char *user, int64_t since) {
    px_view_tab_t t;
    memset(&t, 0, sizeof t);
    snprintf(t.tab_id, sizeof t.tab_id, "%s", tab_id);
    snprintf(t.user_id, sizeof t.user_id, "%s", user);
    t.since_ms = since;
    return t;
}

static gw_self_t started(void) {
    gw_self_t s;
    gw_self_start(&s, TS, MONO, BOUND);
    return s;
}

/* Not in the view: merged (added, at -1), as long as it takes. */
static void test_absent(void **state) {
    gw_self_t s = started();
    px_view_tab_t v[2] = {tab("gw-1-7", "bob", TS - 5), tab("gw-1-8", "carol", TS + 5)};
    long at = 99;
    assert_true(gw_self_merge(&s, v, 2, "gw-1-9", "alice", MONO, &at));
    assert_int_equal(at, -1);
    assert_true(gw_self_merge(&s, NULL, 0, "gw-1-9", "alice", MONO + BOUND - 1, &at));
    /* past the bound but no merged PRESENCE went out yet: still merged */
    assert_true(gw_self_merge(&s, v, 2, "gw-1-9", "alice", MONO + 10 * BOUND, &at));
    s.sent = true;
    assert_false(gw_self_merge(&s, v, 2, "gw-1-9", "alice", MONO + 10 * BOUND, &at));
    assert_int_equal(at, -1);
    assert_false(s.pending);
    /* a no stays no, even with the tab absent and time gone back */
    assert_false(gw_self_merge(&s, v, 2, "gw-1-9", "alice", MONO, &at));
}

/* In the view with an older state (a reconnecting tab, its last SUB's
 * fold): merged in its place. */
static void test_older(void **state) {
    gw_self_t s = started();
    px_view_tab_t v[3] = {tab("t1", "bob", TS), tab("t2", "alice", TS - 1), tab("t3", "alice", TS)};
    long at;
    assert_true(gw_self_merge(&s, v, 3, "t2", "alice", MONO + 1, &at));
    assert_int_equal(at, 1);
    s.sent = true;
    assert_true(gw_self_merge(&s, v, 3, "t2", "alice", MONO + BOUND - 1, &at));
    assert_false(gw_self_merge(&s, v, 3, "t2", "alice", MONO + BOUND, &at)); /* the bound, one sent */
}

/* The fold of this SUB shows (joined at or after the SUB's ts): no more
 * merging, for good. */
static void test_folded(void **state) {
    gw_self_t s = started();
    long at;
    px_view_tab_t at_ts = tab("t1", "alice", TS), later = tab("t1", "alice", TS + 40);
    assert_false(gw_self_merge(&s, &at_ts, 1, "t1", "alice", MONO, &at));
    assert_false(s.pending);
    assert_false(gw_self_merge(&s, NULL, 0, "t1", "alice", MONO, &at)); /* the view loses it: still no */
    s = started();
    assert_false(gw_self_merge(&s, &later, 1, "t1", "alice", MONO, &at));
}

/* A tab of the same id under another user (ids are per gateway, a
 * client may pick its own) is not the subscriber's: merged as absent. */
static void test_other_user(void **state) {
    gw_self_t s = started();
    long at;
    px_view_tab_t v[2] = {tab("t1", "mallory", TS + 100), tab("t1x", "alice", TS + 100)};
    assert_true(gw_self_merge(&s, v, 2, "t1", "alice", MONO, &at));
    assert_int_equal(at, -1);
    assert_true(s.pending);
}

/* Not started (a sub that never sent its SUB through this path): never
 * merged. */
static void test_not_pending(void **state) {
    gw_self_t s;
    memset(&s, 0, sizeof s);
    long at = 5;
    px_view_tab_t t = tab("t1", "alice", 0);
    assert_false(gw_self_merge(&s, &t, 1, "t1", "alice", MONO, &at));
    assert_int_equal(at, -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent),     cmocka_unit_test(test_older),       cmocka_unit_test(test_folded),
        cmocka_unit_test(test_other_user), cmocka_unit_test(test_not_pending),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
