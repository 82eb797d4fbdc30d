/*
 * px_utf8.c - strict UTF-8 validation (RFC 3629, Unicode table 3-7).
 * See px_utf8.h. Byte-wise on purpose: strings here are at most a few
 * hundred bytes, so clarity wins over a SIMD fast path.
 */
#include "px_utf8.h"

#include <stdint.h>

int px_utf8_seq(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the 2nd byte */
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
    } else {
        return -1; /* continuation byte, C0/C1 overlong lead, F5..FF */
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n || s[k] < lo || s[k] > hi) return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

bool px_utf8_valid(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    for (size_t i = 0; i < len;) {
        int k = px_utf8_seq(s + i, len - i);
        if (k < 0) return false;
        i += (size_t)k;
    }
    return true;
}
