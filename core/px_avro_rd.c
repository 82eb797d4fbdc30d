/*
 * px_avro_rd.c - the Avro codec's bounded reader (px_avro_int.h): varints,
 * union and enum indexes, strings, each checked against the bytes left and
 * the px_event.h bounds, with no allocation. Every varint is at most 10
 * bytes (5 for int); strings must be UTF-8 without NUL.
 * Related: px_avro.c (decode), px_avro_resolve.c (writer schemas).
 */
#include <stdint.h>
#include <string.h>

#include "px_avro_int.h"
#include "px_err.h"
#include "px_utf8.h"

/* Zigzag varint of at most maxbytes (10 for long, 5 for int). */
int px_avro_rd_varint(px_avro_rd_t *r, int maxbytes, const char *what, int64_t *out) {
    uint64_t u = 0;
    size_t at = (size_t)(r->p - r->start);
    for (int i = 0;; i++) {
        if (i == maxbytes)
            return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: varint longer than %d bytes at %zu",
                           what, maxbytes, at);
        if (r->p == r->end)
            return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: truncated at %zu", what, at);
        unsigned b = *r->p++;
        u |= (uint64_t)(b & 0x7f) << (7 * i);
        if (i == maxbytes - 1 && (b & 0x7f) >> (maxbytes == 10 ? 1 : 4))
            return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: varint overflows at %zu", what, at);
        if (!(b & 0x80)) break;
    }
    uint64_t z = (u >> 1) ^ (~(u & 1) + 1); /* zigzag, in unsigned arithmetic */
    *out = maxbytes == 5 ? (int64_t)(int32_t)(uint32_t)z : (int64_t)z;
    return 0;
}

/* A union or enum index (an Avro int) in [0, n). */
int px_avro_rd_index(px_avro_rd_t *r, int n, const char *kind, const char *field, int64_t *out) {
    size_t at = (size_t)(r->p - r->start);
    int rc = px_avro_rd_varint(r, 5, field, out);
    if (rc) return rc;
    if (*out < 0 || *out >= n)
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: %s index %lld out of range [0,%d) at %zu",
                       field, kind, (long long)*out, n, at);
    return 0;
}

/* A string into dst (max bytes + NUL). */
int px_avro_rd_string(px_avro_rd_t *r, const char *field, char *dst, size_t max) {
    int64_t len;
    size_t at = (size_t)(r->p - r->start);
    int rc = px_avro_rd_varint(r, 10, field, &len);
    if (rc) return rc;
    size_t left = (size_t)(r->end - r->p);
    if (len < 0)
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: negative string length %lld at %zu", field,
                       (long long)len, at);
    if ((uint64_t)len > left)
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size,
                       "avro: %s: string length %lld exceeds the %zu bytes left at %zu", field, (long long)len,
                       left, at);
    if ((uint64_t)len > max)
        return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: %lld bytes, more than %zu", field,
                       (long long)len, max);
    if (memchr(r->p, '\0', (size_t)len))
        return px_errf(PX_EINVAL, r->errstr, r->errstr_size, "avro: %s: contains NUL", field);
    if (!px_utf8_valid((const char *)r->p, (size_t)len))
        return px_errf(PX_EPROTO, r->errstr, r->errstr_size, "avro: %s: invalid UTF-8 at %zu", field, at);
    memcpy(dst, r->p, (size_t)len);
    dst[len] = '\0';
    r->p += len;
    return 0;
}
