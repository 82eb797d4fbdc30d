/*
 * px_key.c - the entity key `tenant:entity:id`: validate, parse, build, format.
 *
 * Strict on purpose: a key is exactly three parts of 1..PX_KEY_PART_MAX bytes
 * of [A-Za-z0-9._-] joined by ':'. Input is (buf, len), so an embedded NUL
 * is just another bad byte. Nothing here allocates; error texts name the
 * part and the offending byte's offset and value, never echo the input (it
 * may be binary or hostile), so they are safe to log and to send to a DLQ.
 * Related: px_key.h, px_proto.c (entity/id/tab_id/field use the same charset).
 */
#include "px_key.h"

#include <string.h>

#include "px_err.h"

/* The key charset as a table: one lookup per byte on a hot path (every
 * Kafka record key the processor consumes goes through here). */
static const unsigned char px_key_charset[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
    ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
    ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
    ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
    ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static const char *const px_key_part_names[3] = {"tenant", "entity", "id"};

/* Index of the first byte of buf[0..len) outside the charset, or len if none. */
static size_t px_key_first_bad(const char *buf, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (!px_key_charset[(unsigned char)buf[i]]) return i;
    return len;
}

/* Check one part and say why it fails. `what` names the part in errstr;
 * `base` is the part's offset in the whole key, so offsets point into it. */
static int px_key_check_part(const char *what, const char *buf, size_t len, size_t base,
                             char *errstr, size_t errstr_size) {
    if (len == 0) return px_errf(PX_EINVAL, errstr, errstr_size, "%s is empty", what);
    if (len > PX_KEY_PART_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "%s is %zu bytes (max %d)", what, len,
                       PX_KEY_PART_MAX);
    size_t bad = px_key_first_bad(buf, len);
    if (bad < len)
        return px_errf(PX_EINVAL, errstr, errstr_size,
                       "%s has byte 0x%02x at offset %zu (allowed: A-Z a-z 0-9 . _ -)", what,
                       (unsigned)(unsigned char)buf[bad], base + bad);
    return 0;
}

/* Contract: see px_key.h. NULL buf is simply invalid. */
bool px_key_part_valid(const char *buf, size_t len) {
    if (!buf || len == 0 || len > PX_KEY_PART_MAX) return false;
    return px_key_first_bad(buf, len) == len;
}

/* Contract: see px_key.h. Finds the two separators first, then validates the
 * three parts, so `out` is written only once everything has been checked. */
int px_key_parse(const char *buf, size_t len, px_key_t *out, char *errstr, size_t errstr_size) {
    if (!buf || len == 0) return px_errf(PX_EINVAL, errstr, errstr_size, "key is empty");
    if (len > PX_KEY_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "key is %zu bytes (max %d)", len, PX_KEY_MAX);

    size_t start[3], plen[3];
    int n = 0;
    start[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != ':') continue;
        if (n == 2)
            return px_errf(PX_EINVAL, errstr, errstr_size,
                           "key has more than 3 parts (extra ':' at offset %zu)", i);
        plen[n] = i - start[n];
        n++;
        start[n] = i + 1;
    }
    if (n != 2)
        return px_errf(PX_EINVAL, errstr, errstr_size,
                       "key has %d part%s, expected tenant:entity:id", n + 1, n ? "s" : "");
    plen[2] = len - start[2];

    for (int p = 0; p < 3; p++) {
        int rc = px_key_check_part(px_key_part_names[p], buf + start[p], plen[p], start[p], errstr,
                                   errstr_size);
        if (rc) return rc;
    }
    char *dst[3] = {out->tenant, out->entity, out->id};
    for (int p = 0; p < 3; p++) {
        memcpy(dst[p], buf + start[p], plen[p]);
        dst[p][plen[p]] = '\0';
    }
    return 0;
}

/* Contract: see px_key.h. Each part is read with strnlen bounded just past
 * the limit, so an unterminated or huge input is not scanned to its end.
 * `out` is untouched on error. */
int px_key_set(px_key_t *out, const char *tenant, const char *entity, const char *id,
               char *errstr, size_t errstr_size) {
    const char *src[3] = {tenant, entity, id};
    size_t plen[3];
    for (int p = 0; p < 3; p++) {
        if (!src[p])
            return px_errf(PX_EINVAL, errstr, errstr_size, "%s is missing", px_key_part_names[p]);
        plen[p] = strnlen(src[p], PX_KEY_PART_MAX + 1);
        int rc = px_key_check_part(px_key_part_names[p], src[p], plen[p], 0, errstr, errstr_size);
        if (rc) return rc;
    }
    char *dst[3] = {out->tenant, out->entity, out->id};
    for (int p = 0; p < 3; p++) {
        memcpy(dst[p], src[p], plen[p]);
        dst[p][plen[p]] = '\0';
    }
    return 0;
}

/* Contract: see px_key.h. Writes nothing but a terminating NUL at out[0]
 * (when out_size > 0) if the key does not fit, so a caller that ignores
 * the -1 still holds an empty string rather than a truncated key. */
int px_key_format(const px_key_t *key, char *out, size_t out_size) {
    size_t lt = strnlen(key->tenant, PX_KEY_PART_MAX + 1);
    size_t le = strnlen(key->entity, PX_KEY_PART_MAX + 1);
    size_t li = strnlen(key->id, PX_KEY_PART_MAX + 1);
    size_t total = lt + 1 + le + 1 + li;
    if (!out || out_size < total + 1) {
        if (out && out_size > 0) out[0] = '\0';
        return -1;
    }
    char *p = out;
    memcpy(p, key->tenant, lt);
    p += lt;
    *p++ = ':';
    memcpy(p, key->entity, le);
    p += le;
    *p++ = ':';
    memcpy(p, key->id, li);
    p += li;
    *p = '\0';
    return (int)total;
}

/* Contract: see px_key.h. Two NULLs are equal; NULL never equals a key. */
bool px_key_equal(const px_key_t *a, const px_key_t *b) {
    if (a == b) return true;
    if (!a || !b) return false;
    return strcmp(a->tenant, b->tenant) == 0 && strcmp(a->entity, b->entity) == 0 &&
           strcmp(a->id, b->id) == 0;
}
