/*
 * test_log.c - px_log: line shape, escaping, level filter, truncation.
 *
 * Lines are captured through px_log_set_fd() on a pipe and checked with
 * POSIX regexes for the exact shape, then by substring for the details.
 */
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "px_log.h"

typedef struct {
    int rfd, wfd;
} cap_t;

static int cap_setup(void **state) {
    static cap_t c;
    int fds[2];
    if (pipe(fds) != 0) return -1;
    c.rfd = fds[0];
    c.wfd = fds[1];
    px_log_set_fd(c.wfd);
    px_log_set_level(PX_LOG_DEBUG);
    *state = &c;
    return 0;
}

static int cap_teardown(void **state) {
    cap_t *c = *state;
    px_log_set_fd(2);
    px_log_set_level(PX_LOG_INFO);
    close(c->rfd);
    close(c->wfd);
    return 0;
}

/* Read everything written so far (the write end stays open, so read what
 * is buffered without blocking: write a sentinel byte after it). */
static size_t cap_read(cap_t *c, char *buf, size_t size) {
    assert_int_equal(write(c->wfd, "\x01", 1), 1);
    size_t n = 0;
    for (;;) {
        assert_true(n < size - 1);
        ssize_t r = read(c->rfd, buf + n, size - 1 - n);
        assert_true(r > 0);
        n += (size_t)r;
        if (buf[n - 1] == '\x01') break;
    }
    buf[--n] = '\0';
    return n;
}

static void assert_match(const char *re, const char *s) {
    regex_t rx;
    assert_int_equal(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&rx, s, 0, NULL, 0);
    regfree(&rx);
    if (rc != 0) fail_msg("'%s' does not match /%s/", s, re);
}

#define TS_RE "^ts=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

static void test_line_shape(void **state) {
    char buf[8192];
    px_log(PX_LOG_INFO, "gateway", "listening", "port=%d host=%s", 8080, "0.0.0.0");
    cap_read(*state, buf, sizeof buf);
    assert_match(TS_RE "level=info comp=gateway msg=\"listening\" port=8080 host=0\\.0\\.0\\.0\n$",
                 buf);
}

static void test_levels_and_macros(void **state) {
    char buf[8192];
    PX_DEBUG("c", "d", "k=%d", 1);
    PX_INFO("c", "i", "k=%d", 2);
    PX_WARN("c", "w", "k=%d", 3);
    PX_ERROR("c", "e", "k=%d", 4);
    cap_read(*state, buf, sizeof buf);
    assert_match(TS_RE "level=debug comp=c msg=\"d\" k=1\n"
                 "ts=[^ ]+ level=info comp=c msg=\"i\" k=2\n"
                 "ts=[^ ]+ level=warn comp=c msg=\"w\" k=3\n"
                 "ts=[^ ]+ level=error comp=c msg=\"e\" k=4\n$",
                 buf);
}

static void test_null_kvfmt(void **state) {
    char buf[8192];
    px_log(PX_LOG_WARN, "core", "no tail", NULL);
    px_log(PX_LOG_WARN, "core", "empty tail", "%s", "");
    cap_read(*state, buf, sizeof buf);
    assert_match(TS_RE "level=warn comp=core msg=\"no tail\"\n"
                 "ts=[^ ]+ level=warn comp=core msg=\"empty tail\"\n$",
                 buf);
}

static void test_escaping(void **state) {
    char buf[8192];
    px_log(PX_LOG_INFO, "t", "say \"hi\"\nback\\slash\ttab\x01", NULL);
    cap_read(*state, buf, sizeof buf);
    assert_non_null(strstr(buf, " msg=\"say \\\"hi\\\"\\nback\\\\slash\\ttab\\x01\"\n"));
    /* One line only. */
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
}

static void test_kv_tail_newline_stays_one_line(void **state) {
    char buf[8192];
    px_log(PX_LOG_INFO, "t", "m", "raw=%s", "a\nb");
    cap_read(*state, buf, sizeof buf);
    assert_ptr_equal(strchr(buf, '\n'), buf + strlen(buf) - 1);
    assert_non_null(strstr(buf, " raw=a b\n"));
}

static void test_level_filter(void **state) {
    char buf[8192];
    px_log_set_level(PX_LOG_WARN);
    assert_int_equal(px_log_get_level(), PX_LOG_WARN);
    PX_DEBUG("t", "dropped-debug", NULL);
    PX_INFO("t", "dropped-info", NULL);
    PX_WARN("t", "kept-warn", NULL);
    PX_ERROR("t", "kept-error", NULL);
    cap_read(*state, buf, sizeof buf);
    px_log_set_level(PX_LOG_DEBUG);
    assert_null(strstr(buf, "dropped"));
    assert_non_null(strstr(buf, "msg=\"kept-warn\""));
    assert_non_null(strstr(buf, "msg=\"kept-error\""));
}

static void test_level_parse(void **state) {
    (void)state;
    assert_int_equal(px_log_level_parse("debug"), PX_LOG_DEBUG);
    assert_int_equal(px_log_level_parse("info"), PX_LOG_INFO);
    assert_int_equal(px_log_level_parse("WARN"), PX_LOG_WARN);
    assert_int_equal(px_log_level_parse("warning"), PX_LOG_WARN);
    assert_int_equal(px_log_level_parse("error"), PX_LOG_ERROR);
    assert_int_equal(px_log_level_parse("loud"), -1);
    assert_int_equal(px_log_level_parse(""), -1);
    assert_int_equal(px_log_level_parse(NULL), -1);
}

static void test_truncate_long_tail(void **state) {
    char buf[16384];
    char big[5000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char q[6000];
    px_log(PX_LOG_INFO, "t", "long", "a=1 b=%s c=%s", px_log_q(q, sizeof q, big), "tail");
    size_t n = cap_read(*state, buf, sizeof buf);
    assert_true(n <= 2048);
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
    /* Cut at the kv boundary before the over-long quoted value. */
    assert_match(TS_RE "level=info comp=t msg=\"long\" a=1 truncated=true\n$", buf);
}

static void test_truncate_long_msg(void **state) {
    char buf[16384];
    char big[5000];
    for (size_t i = 0; i < sizeof big - 1; i++) big[i] = (i % 7 == 0) ? '"' : 'y';
    big[sizeof big - 1] = '\0';
    px_log(PX_LOG_ERROR, "t", big, "k=%d", 1);
    size_t n = cap_read(*state, buf, sizeof buf);
    assert_true(n <= 2048);
    assert_ptr_equal(strchr(buf, '\n'), buf + n - 1);
    /* The msg stays a closed quoted string, escapes are never split. */
    assert_match(TS_RE "level=error comp=t msg=\"(\\\\\"|y)+\" truncated=true\n$", buf);
}

static void test_q(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(px_log_q(b, sizeof b, "a b"), "\"a b\"");
    assert_string_equal(px_log_q(b, sizeof b, "q\"\\\n"), "\"q\\\"\\\\\\n\"");
    assert_string_equal(px_log_q(b, sizeof b, NULL), "\"\"");
    /* Truncated to fit, still closed. */
    assert_string_equal(px_log_q(b, 8, "abcdefghij"), "\"abcde\"");
    /* An escape is not split: room for 4 bytes of content, \" needs 2. */
    assert_string_equal(px_log_q(b, 7, "abc\"d"), "\"abc\"");
    assert_string_equal(px_log_q(b, 2, "abc"), "");
}

#define LOG_THREADS 4
#define LOG_LINES 200

static void *log_worker(void *arg) {
    long id = (long)arg;
    char pad[600];
    memset(pad, 'a' + (int)id, sizeof pad - 1);
    pad[sizeof pad - 1] = '\0';
    for (int i = 0; i < LOG_LINES; i++) PX_INFO("mt", "line", "t=%ld i=%d pad=%s", id, i, pad);
    return NULL;
}

/* Four threads write long lines to one pipe while this thread reads: every
 * line must arrive whole (one write(2) below PIPE_BUF each). */
static void test_threads_lines_whole(void **state) {
    cap_t *c = *state;
    pthread_t t[LOG_THREADS];
    for (long i = 0; i < LOG_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, log_worker, (void *)i), 0);
    static char all[LOG_THREADS * LOG_LINES * 800];
    size_t n = 0, lines = 0;
    while (lines < LOG_THREADS * LOG_LINES) {
        ssize_t r = read(c->rfd, all + n, sizeof all - 1 - n);
        assert_true(r > 0);
        for (ssize_t i = 0; i < r; i++) lines += all[n + (size_t)i] == '\n';
        n += (size_t)r;
    }
    for (int i = 0; i < LOG_THREADS; i++) pthread_join(t[i], NULL);
    all[n] = '\0';
    int seen[LOG_THREADS] = {0};
    for (char *line = all, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        long id;
        int i;
        char padc;
        assert_int_equal(sscanf(strstr(line, " t="), " t=%ld i=%d pad=%c", &id, &i, &padc), 3);
        assert_true(id >= 0 && id < LOG_THREADS);
        assert_int_equal(i, seen[id]); /* in order per thread, none lost */
        seen[id]++;
        assert_int_equal(padc, 'a' + (int)id);
        assert_int_equal(strlen(strstr(line, "pad=") + 4), 599);
        assert_match(TS_RE "level=info comp=mt msg=\"line\" t=[0-9] i=[0-9]+ pad=[a-d]+$", line);
    }
    for (int i = 0; i < LOG_THREADS; i++) assert_int_equal(seen[i], LOG_LINES);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_shape),
        cmocka_unit_test(test_levels_and_macros),
        cmocka_unit_test(test_null_kvfmt),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_kv_tail_newline_stays_one_line),
        cmocka_unit_test(test_level_filter),
        cmocka_unit_test(test_level_parse),
        cmocka_unit_test(test_truncate_long_tail),
        cmocka_unit_test(test_truncate_long_msg),
        cmocka_unit_test(test_q),
        cmocka_unit_test(test_threads_lines_whole),
    };
    return cmocka_run_group_tests(tests, cap_setup, cap_teardown);
}
