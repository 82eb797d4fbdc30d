/*
 * test_gw_origin.c - the WebSocket origin allow-list (gateway/gw_origin.h):
 * a table of lists against origins, hostile origins among them (a prefix
 * or an extension of an allowed one, another case, embedded NUL, comma or
 * space, control bytes, 4 KiB), and every prefix of an allowed origin.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "gw_origin.h"

typedef struct {
    const char *list;
    const char *origin; /* NULL: no header */
    size_t len;         /* 0: strlen(origin) */
    int allowed;
} origin_case_t;

#define L1 "https://app.example, https://admin.example:8443"
static const origin_case_t cases[] = {
    /* the empty list allows every origin, present or not */
    {"", "https://evil.example", 0, 1},
    {"", NULL, 0, 1},
    /* a missing or empty header passes (not a browser) */
    {L1, NULL, 0, 1},
    {L1, "", 0, 1},
    /* exact entries, with the list's spaces ignored */
    {L1, "https://app.example", 0, 1},
    {L1, "https://admin.example:8443", 0, 1},
    {" , https://app.example ,, ", "https://app.example", 0, 1},
    {"https://app.example", "https://app.example", 0, 1},
    /* near misses */
    {L1, "https://app.example.evil", 0, 0},
    {L1, "https://app.exampl", 0, 0},
    {L1, "https://APP.example", 0, 0},
    {L1, "http://app.example", 0, 0},
    {L1, "https://admin.example", 0, 0},
    {L1, "https://app.example/", 0, 0},
    {L1, " https://app.example", 0, 0},
    {L1, "https://app.example ", 0, 0},
    {L1, "https://app.example, https://admin.example:8443", 0, 0},
    {L1, "null", 0, 0},
    {L1, "*", 0, 0},
    {"*", "https://evil.example", 0, 0},
    /* bytes a header could carry */
    {L1, "https://app.example\0evil", 24, 0},
    {L1, "https://app.example\r\nX: y", 0, 0},
    {L1, "\xff\xfe\xfd", 0, 0},
    /* a list of separators only allows nothing */
    {" , ,", "https://app.example", 0, 0},
    {" , ,", ",", 0, 0},
    {" , ,", " ", 0, 0},
};

static void test_table(void **state) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const origin_case_t *c = &cases[i];
        size_t len = c->origin ? (c->len ? c->len : strlen(c->origin)) : 0;
        if (gw_origin_allowed(c->list, c->origin, len) != (bool)c->allowed)
            fail_msg("case %zu: list '%s' origin '%s': expected %s", i, c->list, c->origin ? c->origin : "(none)",
                     c->allowed ? "allowed" : "refused");
    }
}

/* Every proper prefix of an allowed origin is refused; the origin and the
 * origin passed with a length that cuts nothing are allowed. */
static void test_prefixes(void **state) {
    const char *o = "https://admin.example:8443";
    size_t n = strlen(o);
    for (size_t l = 1; l < n; l++) assert_false(gw_origin_allowed(L1, o, l));
    assert_true(gw_origin_allowed(L1, o, n));
}

/* A 4 KiB origin (the longest field the gateway reads) against a list
 * holding its first 511 bytes, and against itself. */
static void test_long(void **state) {
    static char origin[4097], list[4097];
    memset(origin, 'a', 4096);
    memcpy(list, origin, 511);
    assert_false(gw_origin_allowed(list, origin, 4096));
    memcpy(list, origin, 4097);
    assert_true(gw_origin_allowed(list, origin, 4096));
    assert_false(gw_origin_allowed(list, origin, 4095));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
