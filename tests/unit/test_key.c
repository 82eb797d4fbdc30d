/*
 * test_key.c - unit tests for px_key.c: valid keys, a table of hostile keys
 * (fed by length, so embedded NULs and missing terminators are exercised),
 * px_key_set, px_key_format's size contract and parse/format round trips.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
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
#include "px_key.h"

/* Parse a key held in a heap buffer of exactly len bytes, so ASan catches
 * any read past the end (the parser must not need a terminator). */
static int parse_exact(const char *s, size_t len, px_key_t *k, char *err, size_t errn) {
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = px_key_parse(copy, len, k, err, errn);
    free(copy);
    return rc;
}

static void test_valid_keys(void **state) {
    (void)state;
    static const struct {
        const char *in, *t, *e, *i;
    } rows[] = {
        {"acme:order:42", "acme", "order", "42"},
        {"a:b:c", "a", "b", "c"},
        {"A-Z.a_z:E.n-t_1:0.1-2_3", "A-Z.a_z", "E.n-t_1", "0.1-2_3"},
        {"...:---:___", "...", "---", "___"},
        {"t1:invoice:INV-2024.0001", "t1", "invoice", "INV-2024.0001"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        px_key_t k;
        char err[128] = "";
        assert_int_equal(parse_exact(rows[r].in, strlen(rows[r].in), &k, err, sizeof err), 0);
        assert_string_equal(k.tenant, rows[r].t);
        assert_string_equal(k.entity, rows[r].e);
        assert_string_equal(k.id, rows[r].i);
    }
}

static void test_part_limits(void **state) {
    (void)state;
    char part[PX_KEY_PART_MAX + 2];
    memset(part, 'x', sizeof part);
    assert_true(px_key_part_valid(part, PX_KEY_PART_MAX));
    assert_false(px_key_part_valid(part, PX_KEY_PART_MAX + 1));
    assert_false(px_key_part_valid(part, 0));
    assert_false(px_key_part_valid(NULL, 3));
    assert_true(px_key_part_valid("a", 1));
    assert_false(px_key_part_valid("a b", 3));
    assert_false(px_key_part_valid("a\0b", 3));
    assert_true(px_key_part_valid("ab\0", 2)); /* len-based: the NUL is not part of it */

    /* Every byte value: exactly the 65 charset bytes are accepted. */
    int accepted = 0;
    for (int c = 0; c < 256; c++) {
        char b = (char)c;
        bool want = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
        assert_int_equal(px_key_part_valid(&b, 1), want);
        accepted += want;
    }
    assert_int_equal(accepted, 65);
}

/* Row r of a hostile table, in[0..len): refused with PX_EINVAL, a reason,
 * and `out` untouched. */
static void check_refused(const char *in, size_t len, size_t r) {
    px_key_t k;
    memset(&k, 0x5a, sizeof k);
    px_key_t before = k;
    char err[160] = "";
    int rc = parse_exact(in, len, &k, err, sizeof err);
    if (rc != PX_EINVAL) fail_msg("row %zu: rc %d, want PX_EINVAL", r, rc);
    if (err[0] == '\0') fail_msg("row %zu: no reason in errstr", r);
    if (memcmp(&k, &before, sizeof k) != 0) fail_msg("row %zu: out was written on error", r);
}

/* Hostile keys: each must be refused with PX_EINVAL, a reason, and `out`
 * untouched. Lengths are explicit, so rows may hold NULs. */
static void test_hostile_keys(void **state) {
    (void)state;
    char p128[PX_KEY_PART_MAX + 1], p129[PX_KEY_PART_MAX + 2];
    memset(p128, 'a', PX_KEY_PART_MAX);
    p128[PX_KEY_PART_MAX] = '\0';
    memset(p129, 'a', PX_KEY_PART_MAX + 1);
    p129[PX_KEY_PART_MAX + 1] = '\0';
    char long_tenant[400], long_entity[400], long_id[400], all_long[600];
    snprintf(long_tenant, sizeof long_tenant, "%s:b:c", p129);
    snprintf(long_entity, sizeof long_entity, "a:%s:c", p129);
    snprintf(long_id, sizeof long_id, "a:b:%s", p129);
    snprintf(all_long, sizeof all_long, "%s:%s:%s", p129, p128, p128); /* 387 > PX_KEY_MAX */

#define ROW(s) {s, sizeof(s) - 1}
    const struct {
        const char *in;
        size_t len;
    } rows[] = {
        ROW(""),
        ROW("abc"),
        ROW("a:b"),
        ROW("a:b:c:d"),
        ROW("a::c"),
        ROW(":b:c"),
        ROW("a:b:"),
        ROW("::"),
        ROW(":::"),
        ROW(":"),
        {long_tenant, strlen(long_tenant)},
        {long_entity, strlen(long_entity)},
        {long_id, strlen(long_id)},
        {all_long, strlen(all_long)},
        ROW("a b:c:d"),
        ROW("a:b c:d"),
        ROW(" a:b:c"),
        ROW("a:b:c "),
        ROW("a/b:c:d"),
        ROW("a:b:{c}"),
        ROW("{a:b:c}"),
        ROW("a:b:c}"),
        ROW("a:b*:c"),
        ROW("a:b:*"),
        ROW("a:b:c?"),
        ROW("a:b:c%00"),
        ROW("t:caf\xc3\xa9:1"),       /* unicode e-acute */
        ROW("t:e:\xe2\x82\xac"),      /* euro sign */
        ROW("t:e:\xff"),              /* invalid UTF-8 */
        ROW("a\0:b:c"),               /* NUL inside, length-based */
        ROW("a:b:c\0"),               /* trailing NUL counted in len */
        ROW("a:b\0c:d"),
        ROW("a:b:c\n"),               /* trailing newline */
        ROW("a:b:c\r\n"),
        ROW("a\t:b:c"),
        ROW("a:b:c\\"),
        ROW("a:b:\"c\""),
        ROW("a;b;c"),
        ROW("a,b,c"),
        ROW("a:b:c#1"),
        ROW("a:b:c+1"),
        ROW("a:b:c@x"),
    };
#undef ROW
    size_t n = sizeof rows / sizeof rows[0];
    assert_true(n >= 20);
    for (size_t r = 0; r < n; r++) check_refused(rows[r].in, rows[r].len, r);
    /* NULL buffer and a tiny errstr must be handled too. */
    px_key_t k;
    char tiny[4];
    assert_int_equal(px_key_parse(NULL, 0, &k, tiny, sizeof tiny), PX_EINVAL);
    assert_int_equal(strlen(tiny), 3);
    assert_int_equal(px_key_parse("a:b", 3, &k, NULL, 0), PX_EINVAL);
}

static void test_128_byte_parts_ok(void **state) {
    (void)state;
    char p[PX_KEY_PART_MAX + 1];
    memset(p, 'z', PX_KEY_PART_MAX);
    p[PX_KEY_PART_MAX] = '\0';
    char key[PX_KEY_MAX + 1];
    int n = snprintf(key, sizeof key, "%s:%s:%s", p, p, p);
    assert_int_equal(n, PX_KEY_MAX);
    px_key_t k;
    assert_int_equal(parse_exact(key, (size_t)n, &k, NULL, 0), 0);
    assert_string_equal(k.tenant, p);
    assert_string_equal(k.entity, p);
    assert_string_equal(k.id, p);

    char out[PX_KEY_MAX + 1];
    assert_int_equal(px_key_format(&k, out, sizeof out), PX_KEY_MAX);
    assert_string_equal(out, key);
    /* One byte short of room for the NUL. */
    assert_int_equal(px_key_format(&k, out, PX_KEY_MAX), -1);
    assert_string_equal(out, "");
}

static void test_error_messages(void **state) {
    (void)state;
    px_key_t k;
    char err[160];
    assert_int_equal(px_key_parse("a::c", 4, &k, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "entity is empty"));
    assert_int_equal(px_key_parse("a:b:c d", 7, &k, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "0x20"));
    assert_non_null(strstr(err, "offset 5"));
    assert_int_equal(px_key_parse("a:b:c:d", 7, &k, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "more than 3 parts"));
    assert_int_equal(px_key_parse("a:b", 3, &k, err, sizeof err), PX_EINVAL);
    assert_non_null(strstr(err, "2 parts"));
}

static void test_set(void **state) {
    (void)state;
    px_key_t k, before;
    char err[128];
    assert_int_equal(px_key_set(&k, "acme", "order", "42", err, sizeof err), 0);
    assert_string_equal(k.tenant, "acme");
    assert_string_equal(k.entity, "order");
    assert_string_equal(k.id, "42");

    char p129[PX_KEY_PART_MAX + 2];
    memset(p129, 'q', sizeof p129 - 1);
    p129[sizeof p129 - 1] = '\0';
    /* A huge unterminated-looking part: only 129 bytes are looked at. */
    size_t big = 1u << 20;
    char *huge = malloc(big + 1);
    assert_non_null(huge);
    memset(huge, 'h', big);
    huge[big] = '\0';

    const char *bad[][3] = {
        {NULL, "e", "i"}, {"t", NULL, "i"}, {"t", "e", NULL}, {"", "e", "i"},
        {"t", "", "i"},   {"t", "e", ""},   {"t:x", "e", "i"}, {"t", "e e", "i"},
        {"t", "e", "i\n"}, {p129, "e", "i"}, {"t", "e", huge}, {"t", "\xc3\xa9", "i"},
    };
    for (size_t r = 0; r < sizeof bad / sizeof bad[0]; r++) {
        memset(&k, 0x33, sizeof k);
        before = k;
        if (px_key_set(&k, bad[r][0], bad[r][1], bad[r][2], err, sizeof err) != PX_EINVAL)
            fail_msg("set row %zu accepted", r);
        assert_memory_equal(&k, &before, sizeof k);
    }
    free(huge);
}

static void test_format_and_roundtrip(void **state) {
    (void)state;
    static const char *keys[] = {"a:b:c", "acme:order:42", "T.1:e_2:i-3", "x:yy:zzz"};
    for (size_t r = 0; r < sizeof keys / sizeof keys[0]; r++) {
        px_key_t k, k2;
        size_t len = strlen(keys[r]);
        assert_int_equal(parse_exact(keys[r], len, &k, NULL, 0), 0);
        char out[PX_KEY_MAX + 1];
        assert_int_equal(px_key_format(&k, out, sizeof out), (int)len);
        assert_string_equal(out, keys[r]);
        /* exact fit (len + NUL) works, one less does not */
        assert_int_equal(px_key_format(&k, out, len + 1), (int)len);
        assert_int_equal(px_key_format(&k, out, len), -1);
        assert_int_equal(px_key_format(&k, out, 0), -1);
        assert_int_equal(px_key_format(&k, NULL, 0), -1);
        /* parse(format(k)) == k */
        assert_int_equal(px_key_format(&k, out, sizeof out), (int)len);
        assert_int_equal(px_key_parse(out, len, &k2, NULL, 0), 0);
        assert_true(px_key_equal(&k, &k2));
    }

    /* set -> format -> parse with generated parts of every length 1..128. */
    for (size_t n = 1; n <= PX_KEY_PART_MAX; n++) {
        char part[PX_KEY_PART_MAX + 1];
        for (size_t i = 0; i < n; i++) part[i] = "aZ9._-"[(i + n) % 6];
        part[n] = '\0';
        px_key_t k, k2;
        assert_int_equal(px_key_set(&k, part, "e", part, NULL, 0), 0);
        char out[PX_KEY_MAX + 1];
        int len = px_key_format(&k, out, sizeof out);
        assert_int_equal(len, (int)(2 * n + 3));
        assert_int_equal(px_key_parse(out, (size_t)len, &k2, NULL, 0), 0);
        assert_true(px_key_equal(&k, &k2));
    }
}

static void test_equal(void **state) {
    (void)state;
    px_key_t a, b;
    assert_int_equal(px_key_set(&a, "t", "e", "1", NULL, 0), 0);
    assert_int_equal(px_key_set(&b, "t", "e", "1", NULL, 0), 0);
    assert_true(px_key_equal(&a, &b));
    assert_true(px_key_equal(&a, &a));
    assert_true(px_key_equal(NULL, NULL));
    assert_false(px_key_equal(&a, NULL));
    assert_false(px_key_equal(NULL, &b));
    assert_int_equal(px_key_set(&b, "t", "e", "2", NULL, 0), 0);
    assert_false(px_key_equal(&a, &b));
    assert_int_equal(px_key_set(&b, "t", "E", "1", NULL, 0), 0);
    assert_false(px_key_equal(&a, &b)); /* case-sensitive */
    assert_int_equal(px_key_set(&b, "u", "e", "1", NULL, 0), 0);
    assert_false(px_key_equal(&a, &b));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_keys),
        cmocka_unit_test(test_part_limits),
        cmocka_unit_test(test_hostile_keys),
        cmocka_unit_test(test_128_byte_parts_ok),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_format_and_roundtrip),
        cmocka_unit_test(test_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
