/*
 * test_metrics.c - px_metrics: rendered text line by line, handle identity,
 * histogram cumulativity, the series bound and concurrent updates.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_log.h"
#include "px_metrics.h"

/* Refused registrations log an error by design; keep the test output for
 * real failures. */
static int devnull_fd = -1;
static void quiet_logs(void) {
    devnull_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    px_log_set_fd(devnull_fd);
}
static void loud_logs(void) {
    px_log_set_fd(2);
    close(devnull_fd);
}

static char *render(px_metrics_t *m, px_buf_t *b) {
    px_buf_reset(b);
    assert_int_equal(px_metrics_render(m, b), 0);
    return b->data;
}

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
    return n;
}

static void assert_line(const char *text, const char *line) {
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    /* text always starts with "# HELP", so a line match needs the \n before. */
    if (!strstr(text, want)) fail_msg("missing line '%s' in:\n%s", line, text);
}

static void test_counter_gauge(void **state) {
    (void)state;
    px_metrics_t *m = px_metrics_new();
    assert_non_null(m);
    px_buf_t b;
    px_buf_init(&b, 1 << 20);

    px_counter_t *ok = px_metrics_counter(m, "px_events_total", "Events.", "outcome=\"ok\"");
    px_counter_t *bad = px_metrics_counter(m, "px_events_total", "Events.", "outcome=\"bad\"");
    px_counter_t *plain = px_metrics_counter(m, "px_plain_total", "Plain.", NULL);
    px_gauge_t *g = px_metrics_gauge(m, "px_conns", "Open connections.", NULL);
    assert_ptr_not_equal(ok, bad);
    assert_ptr_equal(ok, px_metrics_counter(m, "px_events_total", "Events.", "outcome=\"ok\""));
    assert_ptr_equal(plain, px_metrics_counter(m, "px_plain_total", "x", ""));
    assert_ptr_equal(g, px_metrics_gauge(m, "px_conns", "Open connections.", NULL));

    px_counter_add(ok, 3);
    px_counter_add(ok, 4);
    px_counter_add(bad, 1);
    px_gauge_set(g, 10);
    px_gauge_add(g, -13);
    assert_int_equal(px_counter_get(ok), 7);
    assert_int_equal(px_gauge_get(g), -3);

    const char *t = render(m, &b);
    assert_line(t, "# HELP px_events_total Events.");
    assert_line(t, "# TYPE px_events_total counter");
    assert_line(t, "px_events_total{outcome=\"ok\"} 7");
    assert_line(t, "px_events_total{outcome=\"bad\"} 1");
    assert_line(t, "px_plain_total 0");
    assert_line(t, "# TYPE px_conns gauge");
    assert_line(t, "px_conns -3");
    assert_line(t, "presence_metrics_dropped_series_total 0");
    assert_int_equal(count(t, "# HELP px_events_total "), 1);
    assert_int_equal(count(t, "# TYPE px_events_total "), 1);
    /* The two series of one name are rendered together, after its TYPE. */
    const char *type = strstr(t, "# TYPE px_events_total");
    const char *s1 = strstr(t, "px_events_total{outcome=\"ok\"}");
    const char *s2 = strstr(t, "px_events_total{outcome=\"bad\"}");
    const char *next = strstr(t, "# HELP px_plain_total");
    assert_true(type < s1 && s1 < s2 && s2 < next);

    px_buf_term(&b);
    px_metrics_free(m);
}

static void test_help_escaping_and_type_clash(void **state) {
    (void)state;
    quiet_logs();
    px_metrics_t *m = px_metrics_new();
    px_buf_t b;
    px_buf_init(&b, 1 << 20);
    px_metrics_counter(m, "px_h_total", "Line one\nback\\slash \"quoted\"", NULL);
    /* Same name as a gauge: refused, counted, handed a working sink. */
    px_gauge_t *g = px_metrics_gauge(m, "px_h_total", "clash", NULL);
    assert_non_null(g);
    px_gauge_set(g, 5);
    /* Invalid names are refused the same way. */
    assert_non_null(px_metrics_counter(m, "9bad", "x", NULL));
    assert_non_null(px_metrics_counter(m, "bad-name", "x", NULL));
    double bounds[] = {2, 1};
    assert_non_null(px_metrics_histogram(m, "px_bad_hist", "x", NULL, bounds, 2));
    const char *t = render(m, &b);
    assert_line(t, "# HELP px_h_total Line one\\nback\\\\slash \"quoted\"");
    assert_null(strstr(t, "clash"));
    assert_null(strstr(t, "9bad"));
    assert_null(strstr(t, "px_bad_hist"));
    assert_line(t, "presence_metrics_dropped_series_total 4");
    px_buf_term(&b);
    px_metrics_free(m);
    loud_logs();
}

static void test_histogram(void **state) {
    (void)state;
    px_metrics_t *m = px_metrics_new();
    px_buf_t b;
    px_buf_init(&b, 1 << 20);
    const double bounds[] = {0.005, 0.5, 1, 2.5};
    px_hist_t *h = px_metrics_histogram(m, "px_lat_seconds", "Latency.", "op=\"get\"", bounds, 4);
    px_hist_t *h2 = px_metrics_histogram(m, "px_lat_seconds", "Latency.", NULL, bounds, 4);
    assert_ptr_equal(h, px_metrics_histogram(m, "px_lat_seconds", "x", "op=\"get\"", bounds, 4));
    px_hist_observe(h, 0.00390625); /* le 0.005 (exact in binary) */
    px_hist_observe(h, 0.5);   /* le 0.5 (inclusive) */
    px_hist_observe(h, 0.75);  /* le 1 */
    px_hist_observe(h, 0.75);
    px_hist_observe(h, 100);   /* +Inf */
    px_hist_observe(h2, 3);

    const char *t = render(m, &b);
    assert_int_equal(count(t, "# TYPE px_lat_seconds histogram"), 1);
    assert_line(t, "px_lat_seconds_bucket{op=\"get\",le=\"0.005\"} 1");
    assert_line(t, "px_lat_seconds_bucket{op=\"get\",le=\"0.5\"} 2");
    assert_line(t, "px_lat_seconds_bucket{op=\"get\",le=\"1\"} 4");
    assert_line(t, "px_lat_seconds_bucket{op=\"get\",le=\"2.5\"} 4");
    assert_line(t, "px_lat_seconds_bucket{op=\"get\",le=\"+Inf\"} 5");
    assert_line(t, "px_lat_seconds_sum{op=\"get\"} 102.00390625");
    assert_line(t, "px_lat_seconds_count{op=\"get\"} 5");
    assert_line(t, "px_lat_seconds_bucket{le=\"2.5\"} 0");
    assert_line(t, "px_lat_seconds_bucket{le=\"+Inf\"} 1");
    assert_line(t, "px_lat_seconds_sum 3");
    assert_line(t, "px_lat_seconds_count 1");
    px_buf_term(&b);
    px_metrics_free(m);
}

static void test_overflow(void **state) {
    (void)state;
    quiet_logs();
    px_metrics_t *m = px_metrics_new();
    px_buf_t b;
    px_buf_init(&b, 1 << 22);
    /* The registry's own counter is series 1 of PX_METRICS_MAX. */
    for (int i = 0; i < PX_METRICS_MAX - 1; i++) {
        char lb[32];
        snprintf(lb, sizeof lb, "i=\"%d\"", i);
        px_counter_t *c = px_metrics_counter(m, "px_many_total", "Many.", lb);
        px_counter_add(c, 1);
    }
    px_counter_t *o1 = px_metrics_counter(m, "px_many_total", "Many.", "i=\"over1\"");
    px_counter_t *o2 = px_metrics_counter(m, "px_other_total", "Other.", NULL);
    assert_non_null(o1);
    assert_ptr_equal(o1, o2); /* the shared sink */
    px_counter_add(o1, 5);
    /* Existing series are still found. */
    px_counter_t *c0 = px_metrics_counter(m, "px_many_total", "Many.", "i=\"0\"");
    px_counter_add(c0, 1);
    const char *t = render(m, &b);
    assert_line(t, "presence_metrics_dropped_series_total 2");
    assert_line(t, "px_many_total{i=\"0\"} 2");
    assert_line(t, "px_many_total{i=\"1022\"} 1");
    assert_null(strstr(t, "over1"));
    assert_null(strstr(t, "px_other_total"));
    assert_int_equal(count(t, "\npx_many_total{"), PX_METRICS_MAX - 1);
    px_buf_term(&b);
    px_metrics_free(m);
    loud_logs();
}

#define THREADS 4
#define ITERS 100000

typedef struct {
    px_counter_t *c;
    px_gauge_t *g;
    px_hist_t *h;
} shared_t;

static void *worker(void *arg) {
    shared_t *s = arg;
    for (int i = 0; i < ITERS; i++) {
        px_counter_add(s->c, 1);
        px_gauge_add(s->g, 2);
        px_hist_observe(s->h, (i & 1) ? 1.0 : 0.25);
    }
    return NULL;
}

static void test_concurrent(void **state) {
    (void)state;
    px_metrics_t *m = px_metrics_new();
    px_buf_t b;
    px_buf_init(&b, 1 << 20);
    const double bounds[] = {0.5};
    shared_t s = {px_metrics_counter(m, "px_c_total", "C.", NULL),
                  px_metrics_gauge(m, "px_g", "G.", NULL),
                  px_metrics_histogram(m, "px_h", "H.", NULL, bounds, 1)};
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) assert_int_equal(pthread_create(&t[i], NULL, worker, &s), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    assert_int_equal(px_counter_get(s.c), (uint64_t)THREADS * ITERS);
    assert_int_equal(px_gauge_get(s.g), 2 * THREADS * ITERS);
    const char *txt = render(m, &b);
    char line[128];
    snprintf(line, sizeof line, "px_h_bucket{le=\"0.5\"} %d", THREADS * ITERS / 2);
    assert_line(txt, line);
    snprintf(line, sizeof line, "px_h_count %d", THREADS * ITERS);
    assert_line(txt, line);
    /* 0.25 and 1.0 sums are exact in binary floating point. */
    snprintf(line, sizeof line, "px_h_sum %d", THREADS * ITERS / 2 * 5 / 4);
    assert_line(txt, line);
    px_buf_term(&b);
    px_metrics_free(m);
}

static void test_render_cap(void **state) {
    (void)state;
    px_metrics_t *m = px_metrics_new();
    px_buf_t b;
    px_buf_init(&b, 16);
    assert_int_equal(px_metrics_render(m, &b), PX_ENOMEM);
    px_buf_term(&b);
    px_metrics_free(m);
    px_metrics_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge),
        cmocka_unit_test(test_help_escaping_and_type_clash),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_render_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
