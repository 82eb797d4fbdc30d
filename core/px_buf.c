/* px_buf.c - capped growable buffer. See px_buf.h. */
#include "px_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "px_err.h"

void px_buf_init(px_buf_t *b, size_t cap) {
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

void px_buf_term(px_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->alloc = 0;
}

void px_buf_reset(px_buf_t *b) {
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

int px_buf_reserve(px_buf_t *b, size_t n) {
    if (n > b->cap || b->len > b->cap - n) return PX_ENOMEM;
    size_t need = b->len + n + 1; /* +1 for the NUL */
    if (need <= b->alloc) return 0;
    size_t na = b->alloc ? b->alloc : 256;
    while (na < need) na *= 2;
    if (na > b->cap + 1) na = b->cap + 1;
    char *p = realloc(b->data, na);
    if (!p) return PX_ENOMEM;
    b->data = p;
    b->alloc = na;
    return 0;
}

int px_buf_append(px_buf_t *b, const void *p, size_t n) {
    int rc = px_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int px_buf_puts(px_buf_t *b, const char *s) { return px_buf_append(b, s, strlen(s)); }

int px_buf_printf(px_buf_t *b, const char *fmt, ...) {
    va_list ap;
    char small[256];
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return PX_EINVAL;
    if ((size_t)n < sizeof small) return px_buf_append(b, small, (size_t)n);
    int rc = px_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int px_buf_put_i64(px_buf_t *b, int64_t v) {
    char tmp[24];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) tmp[--i] = '-';
    return px_buf_append(b, tmp + i, sizeof tmp - i);
}

int px_buf_put_hex64(px_buf_t *b, uint64_t v) {
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    for (int i = 15; i >= 0; i--, v >>= 4) tmp[i] = hex[v & 15];
    return px_buf_append(b, tmp, sizeof tmp);
}
