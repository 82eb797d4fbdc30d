/*
 * test_wire.c - unit tests for px_wire.c: each framing recognised with its
 * header fields, a table of hostile values (fed by length from exact-size
 * heap copies, so ASan catches a read past the end), every prefix of valid
 * values, the confluent header round trip and the format names.
 * Run under ASan/UBSan and valgrind by ctest (label unit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "px_buf.h"
#include "px_err.h"
#include "px_wire.h"

static int parse_exact(const void *v, size_t len, px_wire_hdr_t *h, char *err, size_t errn) {
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len) memcpy(copy, v, len);
    int rc = px_wire_parse(len ? copy : NULL, len, h, err, errn);
    free(copy);
    return rc;
}

static void test_framings(void **state) {
    (void)state;
    const unsigned char so[] = {0xC3, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x02};
    const unsigned char cf[] = {0x00, 0x00, 0x01, 0x02, 0x03, 0x02, 0x61};
    const char js[] = " \n\t{\"type\":\"MUTATED\"}";
    px_wire_hdr_t h;
    char err[160] = "";
    assert_int_equal(parse_exact(so, sizeof so, &h, err, sizeof err), 0);
    assert_int_equal(h.format, PX_WIRE_SINGLE_OBJECT);
    assert_true(h.fingerprint == 0x1122334455667788ULL);
    assert_int_equal(h.body_off, 10);
    assert_int_equal(parse_exact(cf, sizeof cf, &h, err, sizeof err), 0);
    assert_int_equal(h.format, PX_WIRE_CONFLUENT);
    assert_int_equal(h.schema_id, 0x010203);
    assert_int_equal(h.body_off, 5);
    assert_int_equal(parse_exact(js, strlen(js), &h, err, sizeof err), 0);
    assert_int_equal(h.format, PX_WIRE_JSON);
    assert_int_equal(h.body_off, 3);
}

/* Each row must be refused with PX_EPROTO and a reason naming the fault. */
static void test_hostile(void **state) {
    (void)state;
    static const struct {
        const char *in;
        size_t len;
        const char *why;
    } rows[] = {
        {"", 0, "empty"},
        {"\xC3", 1, "C3 not followed by 01"},
        {"\xC3\x02\0\0\0\0\0\0\0\0\0", 11, "C3 not followed by 01"},
        {"\xC3\x01", 2, "truncated (2 of 10"},
        {"\xC3\x01\1\2\3\4\5\6\7", 9, "truncated (9 of 10"},
        {"\xC3\x01\1\2\3\4\5\6\7\x08", 10, "header with no body"},
        {"\0", 1, "truncated (1 of 5"},
        {"\0\0\0\1", 4, "truncated (4 of 5"},
        {"\0\0\0\0\1", 5, "header with no body"},
        {"\0\x80\0\0\0\2", 6, "out of range"},
        {"\0\xff\xff\xff\xff\2", 6, "out of range"},
        {"\x01\x02", 2, "first byte 0x01"},
        {"\xff", 1, "first byte 0xff"},
        {"   ", 3, "first byte 0x20"},
        {"[1,2]", 5, "first byte 0x5b"},
        {"\"x\"", 3, "first byte 0x22"},
        {"\xC2\x01\0\0\0\0\0\0\0\0\0", 11, "first byte 0xc2"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        px_wire_hdr_t h = {.schema_id = 77};
        char err[160] = "";
        assert_int_equal(parse_exact(rows[r].in, rows[r].len, &h, err, sizeof err), PX_EPROTO);
        if (!strstr(err, rows[r].why)) fail_msg("row %zu: '%s' lacks '%s'", r, err, rows[r].why);
        assert_int_equal(h.schema_id, 77); /* untouched on error */
    }
}

/* Every prefix of a valid value parses or is refused; none reads past its
 * length, and the header fields of any accepted prefix are the full ones. */
static void test_prefixes(void **state) {
    (void)state;
    const unsigned char so[] = {0xC3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x02, 0x61};
    const unsigned char cf[] = {0x00, 0x00, 0x00, 0x00, 0x2a, 0x02, 0x61};
    const unsigned char *vals[] = {so, cf};
    const size_t lens[] = {sizeof so, sizeof cf};
    for (size_t v = 0; v < 2; v++) {
        px_wire_hdr_t full;
        char err[160];
        assert_int_equal(parse_exact(vals[v], lens[v], &full, err, sizeof err), 0);
        for (size_t n = 0; n < lens[v]; n++) {
            px_wire_hdr_t h;
            int rc = parse_exact(vals[v], n, &h, err, sizeof err);
            if (n <= full.body_off) {
                assert_int_equal(rc, PX_EPROTO);
            } else {
                assert_int_equal(rc, 0);
                assert_int_equal(h.format, full.format);
                assert_int_equal(h.body_off, full.body_off);
                assert_true(h.fingerprint == full.fingerprint && h.schema_id == full.schema_id);
            }
        }
    }
}

static void test_confluent_round_trip(void **state) {
    (void)state;
    static const uint32_t ids[] = {0, 1, 255, 256, 65536, 0x01020304, INT32_MAX};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        px_buf_t b;
        px_buf_init(&b, 64);
        assert_int_equal(px_wire_put_confluent(&b, ids[i]), 0);
        assert_int_equal(px_buf_append(&b, "\x02z", 2), 0);
        assert_int_equal(b.len, 7);
        px_wire_hdr_t h;
        char err[160];
        assert_int_equal(parse_exact(b.data, b.len, &h, err, sizeof err), 0);
        assert_int_equal(h.format, PX_WIRE_CONFLUENT);
        assert_int_equal(h.schema_id, ids[i]);
        px_buf_term(&b);
    }
    px_buf_t tiny; /* a buffer whose cap cannot hold the header */
    px_buf_init(&tiny, 4);
    assert_int_equal(px_wire_put_confluent(&tiny, 1), PX_ENOMEM);
    px_buf_term(&tiny);
}

static void test_format_names(void **state) {
    (void)state;
    px_wire_format_t f = PX_WIRE_JSON;
    assert_int_equal(px_wire_format_parse("confluent", &f), 0);
    assert_int_equal(f, PX_WIRE_CONFLUENT);
    assert_int_equal(px_wire_format_parse("single-object", &f), 0);
    assert_int_equal(f, PX_WIRE_SINGLE_OBJECT);
    static const char *bad[] = {"", "json", "Confluent", "single_object", "confluent ", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = PX_WIRE_JSON;
        assert_int_equal(px_wire_format_parse(bad[i], &f), PX_ECONFIG);
        assert_int_equal(f, PX_WIRE_JSON);
    }
    assert_string_equal(px_wire_format_name(PX_WIRE_CONFLUENT), "confluent");
    assert_string_equal(px_wire_format_name(PX_WIRE_SINGLE_OBJECT), "single-object");
    assert_string_equal(px_wire_format_name(PX_WIRE_JSON), "json");
    assert_string_equal(px_wire_format_name((px_wire_format_t)9), "unknown");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_framings),        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_prefixes),        cmocka_unit_test(test_confluent_round_trip),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
