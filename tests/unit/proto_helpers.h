/*
 * proto_helpers.h - the fixtures the protocol tests share (test_proto.c,
 * test_proto_hostile.c, test_proto_write.c): parsing from an exactly-sized
 * heap block, the code words, jansson as the oracle for JSON and UTF-8, and
 * a deterministic PRNG. Header-only; include it after cmocka.h.
 */
#ifndef PX_PROTO_HELPERS_H
#define PX_PROTO_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "px_proto.h"

/* Parse from a heap block of exactly len bytes (no terminator). */
static inline int parse_exact(const char *s, size_t len, px_msg_t *m, const char **code, char *err,
                       size_t errn) {
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, s, len);
    int rc = px_proto_parse(copy, len, m, code, err, errn);
    free(copy);
    return rc;
}

static inline int parse_str(const char *s, px_msg_t *m, const char **code) {
    char err[256];
    return parse_exact(s, strlen(s), m, code, err, sizeof err);
}

static inline bool is_code_word(const char *c) {
    return c && (strcmp(c, PX_PROTO_E_TOO_LARGE) == 0 || strcmp(c, PX_PROTO_E_BAD_JSON) == 0 ||
                 strcmp(c, PX_PROTO_E_BAD_TYPE) == 0 || strcmp(c, PX_PROTO_E_BAD_FIELD) == 0);
}

/* Parse out[0..len) with jansson (any top-level value); fail the test if
 * it is not valid JSON. Caller owns the result. */
static inline json_t *must_be_json(const char *s, size_t len) {
    json_error_t e;
    json_t *j = json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
    if (!j) fail_msg("writer output is not valid JSON (%s): %.*s", e.text, (int)len, s);
    return j;
}

/* True if s[0..n) is valid UTF-8 according to jansson (used as an
 * independent oracle for the writer's own validator). */
static inline bool jansson_says_utf8(const unsigned char *s, size_t n) {
    /* Wrap the bytes in quotes, escaping what JSON needs escaped, and let
     * jansson decide: it rejects invalid UTF-8 in strings. */
    char *buf = malloc(n * 6 + 3);
    assert_non_null(buf);
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\') {
            o += (size_t)sprintf(buf + o, "\\u%04x", s[i]);
        } else {
            buf[o++] = (char)s[i];
        }
    }
    buf[o++] = '"';
    json_error_t e;
    json_t *j = json_loadb(buf, o, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    free(buf);
    if (!j) return false;
    json_decref(j);
    return true;
}

/* Deterministic PRNG (xorshift64*): the same mutations on every run. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

#endif
