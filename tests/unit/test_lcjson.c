/*
 * test_lcjson.c - JSON lifecycle records: valid forms field by field, a
 * hostile-input table, every prefix refused, and mutations that never crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"
#include "px_lcjson.h"

static const char MUTATING[] =
    "{\"type\":\"MUTATING\",\"tenant\":\"acme\",\"entity\":\"order\",\"id\":\"42\","
    "\"busy_by\":\"erp-sync\",\"write_id\":\"w-981\",\"ts\":1700000000000}";
static const char MUTATED[] = "{\"type\":\"MUTATED\",\"tenant\":\"acme\",\"entity\":\"order\",\"id\":\"42\","
                              "\"writeId\":\"w-981\",\"version\":17,\"extra\":[1,2]}";

static void test_valid(void **state) {
    px_event_t ev;
    char err[256];
    assert_int_equal(px_lcjson_decode(MUTATING, strlen(MUTATING), 5, &ev, err, sizeof err), 0);
    assert_int_equal(ev.kind, PX_KIND_LIFECYCLE);
    assert_int_equal(ev.type, PX_LC_MUTATING);
    assert_string_equal(ev.key.tenant, "acme");
    assert_string_equal(ev.key.entity, "order");
    assert_string_equal(ev.key.id, "42");
    assert_string_equal(ev.busy_by, "erp-sync");
    assert_string_equal(ev.write_id, "w-981");
    assert_int_equal(ev.ts_ms, 1700000000000LL);
    assert_int_equal(ev.version, PX_NONE);
    assert_int_equal(px_lcjson_decode(MUTATED, strlen(MUTATED), 1234, &ev, err, sizeof err), 0);
    assert_int_equal(ev.type, PX_LC_MUTATED);
    assert_int_equal(ev.version, 17);
    assert_int_equal(ev.ts_ms, 1234); /* no ts: the record's timestamp */
    assert_string_equal(ev.write_id, "w-981");
    const char *camel = "{\"type\":\"MUTATING\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"busyBy\":\"X\"}";
    assert_int_equal(px_lcjson_decode(camel, strlen(camel), 9, &ev, err, sizeof err), 0);
    assert_string_equal(ev.busy_by, "X");
}

static const struct {
    const char *in;
    int rc;
} hostile[] = {
    {"", PX_EPROTO},
    {"null", PX_EPROTO},
    {"[]", PX_EPROTO},
    {"\"MUTATING\"", PX_EPROTO},
    {"{", PX_EPROTO},
    {"{}", PX_EINVAL},
    {"{\"type\":\"MUTATING\"}", PX_EINVAL},
    {"{\"type\":\"EXPIRE\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"expires_at_ms\":1}", PX_EINVAL},
    {"{\"type\":\"mutating\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\"}", PX_EINVAL},
    {"{\"type\":1,\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a b\",\"entity\":\"b\",\"id\":\"c\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b:c\",\"id\":\"c\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"version\":-1}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"version\":\"7\"}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"version\":1.5}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"version\":1e999}", PX_EPROTO},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"ts\":-5}", PX_EINVAL},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"ts\":0}", PX_EINVAL},
    {"{\"type\":\"MUTATING\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"version\":3}", PX_EINVAL},
    {"{\"type\":\"MUTATING\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"busy_by\":7}", PX_EINVAL},
    {"{\"type\":\"MUTATING\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"busy_by\":\"\\u0000\"}", PX_EPROTO},
    {"{\"type\":\"MUTATING\",\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\"}", PX_EPROTO},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\"} x", PX_EPROTO},
    {"{\"type\":\"MUTATED\",\"tenant\":\"\xff\",\"entity\":\"b\",\"id\":\"c\"}", PX_EPROTO},
    {"{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"c\",\"write_id\":[]}", PX_EINVAL},
};

static void test_hostile(void **state) {
    char err[256];
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        px_event_t ev;
        size_t len = strlen(hostile[i].in);
        char *copy = malloc(len + 1);
        memcpy(copy, hostile[i].in, len + 1);
        int rc = px_lcjson_decode(copy, len, 1000, &ev, err, sizeof err);
        if (rc != hostile[i].rc) fail_msg("row %zu %s: rc %d want %d (%s)", i, hostile[i].in, rc, hostile[i].rc, err);
        free(copy);
    }
    /* over the size limit, and a 129-byte id */
    char big[PX_LCJSON_MAX_BYTES + 64];
    memset(big, ' ', sizeof big);
    memcpy(big, MUTATED, strlen(MUTATED));
    px_event_t ev;
    assert_int_equal(px_lcjson_decode(big, sizeof big, 1, &ev, err, sizeof err), PX_EPROTO);
    char longid[512];
    snprintf(longid, sizeof longid, "{\"type\":\"MUTATED\",\"tenant\":\"a\",\"entity\":\"b\",\"id\":\"%0129d\"}", 0);
    assert_int_equal(px_lcjson_decode(longid, strlen(longid), 1, &ev, err, sizeof err), PX_EINVAL);
}

static void test_prefixes_and_mutations(void **state) {
    char err[256];
    size_t len = strlen(MUTATING);
    for (size_t n = 0; n < len; n++) {
        px_event_t ev;
        char *copy = malloc(n ? n : 1);
        memcpy(copy, MUTATING, n);
        assert_int_not_equal(px_lcjson_decode(copy, n, 1, &ev, err, sizeof err), 0);
        free(copy);
    }
    uint32_t seed = 7;
    for (int it = 0; it < 5000; it++) {
        char m[sizeof MUTATING];
        memcpy(m, MUTATING, sizeof m);
        for (int k = 0; k < 2; k++) {
            seed = seed * 1103515245u + 12345u;
            m[(seed >> 8) % len] = (char)(seed >> 16);
        }
        px_event_t ev;
        if (px_lcjson_decode(m, len, 1, &ev, err, sizeof err) == 0)
            assert_int_equal(px_event_validate(&ev, err, sizeof err), 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_prefixes_and_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
