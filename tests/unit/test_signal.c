/*
 * test_signal.c - px_signal (stop flag, sigaction and libuv variants) and
 * px_time (the two clocks).
 *
 * The libuv case runs first and restores default dispositions, because
 * libuv and sigaction handlers must not be mixed in one process.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_signal.h"
#include "px_time.h"

typedef struct {
    int stops;
    px_signal_uv_t *sig;
    uv_timer_t t;
    int step;
} uv_ctx_t;

static void on_stop(void *arg) {
    uv_ctx_t *c = arg;
    c->stops++;
}

/* Step 0: send SIGTERM; step 1: send SIGINT (must not call on_stop again);
 * step 2: stop watching and let the loop end. */
static void on_tick(uv_timer_t *t) {
    uv_ctx_t *c = t->data;
    if (c->step == 0) {
        assert_int_equal(uv_kill(getpid(), SIGTERM), 0);
    } else if (c->step == 1) {
        assert_int_equal(c->stops, 1);
        assert_int_equal(uv_kill(getpid(), SIGINT), 0);
    } else {
        px_signal_uv_stop(c->sig);
        c->sig = NULL;
        uv_close((uv_handle_t *)t, NULL);
    }
    c->step++;
}

static void test_uv(void **state) {
    (void)state;
    px_stop_requested = 0;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_ctx_t c = {0};
    assert_int_equal(px_signal_uv_start(&loop, on_stop, &c, &c.sig), 0);
    assert_non_null(c.sig);
    assert_int_equal(uv_timer_init(&loop, &c.t), 0);
    c.t.data = &c;
    assert_int_equal(uv_timer_start(&c.t, on_tick, 10, 20), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(c.stops, 1);
    assert_int_equal(px_stop_requested, 1);
    px_signal_uv_stop(NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

static void test_install(void **state) {
    (void)state;
    px_stop_requested = 0;
    assert_int_equal(px_signal_install(), 0);
    assert_int_equal(raise(SIGPIPE), 0); /* ignored: the test lives on */
    assert_int_equal(px_stop_requested, 0);
    assert_int_equal(raise(SIGTERM), 0);
    assert_int_equal(px_stop_requested, 1);
    px_stop_requested = 0;
    assert_int_equal(raise(SIGINT), 0);
    assert_int_equal(px_stop_requested, 1);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
}

static void test_time(void **state) {
    (void)state;
    int64_t now = px_now_ms();
    assert_true(now > 1600000000000LL); /* after 2020 */
    assert_true(now - (int64_t)time(NULL) * 1000 < 2000);
    int64_t m0 = px_mono_ms();
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    int64_t m1 = px_mono_ms();
    assert_true(m1 - m0 >= 20);
    assert_true(m1 - m0 < 5000);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uv),
        cmocka_unit_test(test_install),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
