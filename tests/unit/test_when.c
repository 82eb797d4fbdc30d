/*
 * test_when.c - unit tests for px_when.c (presencectl's --from/--to): a
 * table of valid inputs with their expected ms, a table of hostile inputs
 * that must be refused with a reason (each parsed from a heap copy of
 * exactly its size, so ASan sees any read past the terminator), ranges,
 * and format/parse round trips over many instants.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_err.h"
#include "px_when.h"

#define NOW 1763805600000LL /* 2025-11-22T10:00:00Z */

static int parse_copy(const char *s, int64_t *out, char *err, size_t n) {
    size_t len = strlen(s) + 1;
    char *c = malloc(len);
    assert_non_null(c);
    memcpy(c, s, len);
    int rc = px_when_parse(c, NOW, out, err, n);
    free(c);
    return rc;
}

static void test_valid(void **state) {
    (void)state;
    static const struct {
        const char *in;
        int64_t ms;
    } rows[] = {
        {"now", NOW},
        {"0", 0},
        {"1700000000000", 1700000000000LL},
        {"-15m", NOW - 15 * 60000},
        {"-2h", NOW - 2 * 3600000},
        {"-30s", NOW - 30000},
        {"-7d", NOW - 7 * 86400000LL},
        {"-250ms", NOW - 250},
        {"-0s", NOW},
        {"1970-01-01", 0},
        {"2025-11-22", 1763769600000LL},
        {"2025-11-22T10:00:00Z", NOW},
        {"2025-11-22t10:00:00z", NOW},
        {"2025-11-22 10:00:00Z", NOW},
        {"2025-11-22T10:00Z", NOW},
        {"2025-11-22T11:00+01:00", NOW},
        {"2025-11-22T05:30:00-04:30", NOW},
        {"2025-11-22T10:00:00.250Z", NOW + 250},
        {"2025-11-22T10:00:00.2Z", NOW + 200},
        {"2025-11-22T10:00:00.123456789Z", NOW + 123},
        {"2024-02-29T00:00:00Z", 1709164800000LL},
        {"2000-02-29", 951782400000LL},
        {"9999-12-31T23:59:59.999Z", 253402300799999LL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t v = -1;
        char err[200] = "";
        if (parse_copy(rows[i].in, &v, err, sizeof err) != 0) fail_msg("'%s' refused: %s", rows[i].in, err);
        if (v != rows[i].ms) fail_msg("'%s' -> %lld, want %lld", rows[i].in, (long long)v, (long long)rows[i].ms);
    }
}

static void test_hostile(void **state) {
    (void)state;
    static const char *const rows[] = {
        "", " ", "now ", "NOW", "yesterday", "-", "-m", "-15", "-15x", "-15 m", "--15m", "+15m", "-1.5h",
        "-99999999999999999999d", "-9223372036854775807d", "-100000d", "1e12", "12.5", "1700000000000 ",
        "9999999999999999", "253402300800000", "2025-11", "2025-1-22", "2025-11-2", "2025-13-01",
        "2025-00-10", "2025-02-29", "2024-02-30", "2025-04-31", "2025-11-00", "2025-11-32", "2025/11/22",
        "2025-11-22T", "2025-11-22T10", "2025-11-22T10:00", "2025-11-22T10:00:00", "2025-11-22T24:00:00Z",
        "2025-11-22T10:60:00Z", "2025-11-22T10:00:60Z", "2025-11-22T10:00:00.Z", "2025-11-22T10:00:00.1234567890Z",
        "2025-11-22T10:00:00+1:00", "2025-11-22T10:00:00+01", "2025-11-22T10:00:00+25:00", "2025-11-22T10:00:00+01:60",
        "2025-11-22T10:00:00ZZ", "2025-11-22T10:00:00Z ", "2025-11-22X10:00:00Z", "1969-12-31", "1970-01-01T00:00:00+00:01",
        "0000-01-01", "2025-11-22T1a:00Z", "2025-11-22\n", "\xff\xfe", "2025-11-22T10:00:00\x00Z",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int64_t v = 42;
        char err[200] = "";
        int rc = parse_copy(rows[i], &v, err, sizeof err);
        if (rc != PX_EINVAL) fail_msg("'%s' accepted (%lld)", rows[i], (long long)v);
        assert_int_equal(v, 42);
        assert_true(strlen(err) > 0);
    }
    int64_t v;
    assert_int_equal(px_when_parse(NULL, NOW, &v, NULL, 0), PX_EINVAL);
}

static void test_range(void **state) {
    (void)state;
    int64_t f, t;
    char err[200];
    assert_int_equal(px_when_range(NULL, NULL, NOW, &f, &t, err, sizeof err), 0);
    assert_int_equal(f, 0);
    assert_int_equal(t, INT64_MAX);
    assert_int_equal(px_when_range("-1h", "now", NOW, &f, &t, err, sizeof err), 0);
    assert_int_equal(f, NOW - 3600000);
    assert_int_equal(t, NOW);
    assert_int_equal(px_when_range("now", "-1h", NOW, &f, &t, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "empty time range"));
    assert_int_equal(px_when_range("now", "now", NOW, &f, &t, err, sizeof err), PX_EINVAL);
    assert_int_equal(px_when_range("bad", NULL, NOW, &f, &t, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "--from"));
    assert_int_equal(px_when_range(NULL, "2025-13-01", NOW, &f, &t, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "--to"));
}

static void test_roundtrip(void **state) {
    (void)state;
    char buf[64], err[200];
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t ms = (int64_t)(x % 253402300800000ULL), back = -1;
        px_when_format(ms, buf, sizeof buf);
        if (px_when_parse(buf, NOW, &back, err, sizeof err) || back != ms)
            fail_msg("%lld -> %s -> %lld (%s)", (long long)ms, buf, (long long)back, err);
    }
    assert_string_equal(px_when_format(NOW + 5, buf, sizeof buf), "2025-11-22T10:00:00.005Z");
    assert_string_equal(px_when_format(-1, buf, sizeof buf), "-1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
