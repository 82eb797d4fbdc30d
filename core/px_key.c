/*
 * px_key.c - the entity key `tenant:entity:id`. See px_key.h.
 *
 * Minimal implementation written alongside the Avro codec (which needs
 * px_key_part_valid and px_key_set); another branch owns this module and
 * the two are reconciled at merge. Strict, allocation-free.
 */
#include "px_key.h"

#include <string.h>

#include "px_err.h"

/* [A-Za-z0-9._-] without locale: isalnum() would depend on setlocale. */
static bool px_key_char_ok(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

bool px_key_part_valid(const char *buf, size_t len) {
    if (!buf || len == 0 || len > PX_KEY_PART_MAX) return false;
    for (size_t i = 0; i < len; i++)
        if (!px_key_char_ok((unsigned char)buf[i])) return false;
    return true;
}

int px_key_parse(const char *buf, size_t len, px_key_t *out, char *errstr, size_t errstr_size) {
    if (!buf) return px_errf(PX_EINVAL, errstr, errstr_size, "key: missing");
    if (len > PX_KEY_MAX)
        return px_errf(PX_EINVAL, errstr, errstr_size, "key: %zu bytes, more than %d", len, PX_KEY_MAX);
    const char *c1 = memchr(buf, ':', len);
    if (!c1) return px_errf(PX_EINVAL, errstr, errstr_size, "key: expected tenant:entity:id");
    const char *rest = c1 + 1;
    size_t rest_len = len - (size_t)(rest - buf);
    const char *c2 = memchr(rest, ':', rest_len);
    if (!c2) return px_errf(PX_EINVAL, errstr, errstr_size, "key: expected tenant:entity:id");
    const char *idp = c2 + 1;
    size_t id_len = len - (size_t)(idp - buf);
    size_t t_len = (size_t)(c1 - buf), e_len = (size_t)(c2 - rest);
    if (!px_key_part_valid(buf, t_len))
        return px_errf(PX_EINVAL, errstr, errstr_size, "key: bad tenant part");
    if (!px_key_part_valid(rest, e_len))
        return px_errf(PX_EINVAL, errstr, errstr_size, "key: bad entity part");
    /* A third colon makes the id part invalid: ':' is not a key char. */
    if (!px_key_part_valid(idp, id_len))
        return px_errf(PX_EINVAL, errstr, errstr_size, "key: bad id part");
    memcpy(out->tenant, buf, t_len);
    out->tenant[t_len] = '\0';
    memcpy(out->entity, rest, e_len);
    out->entity[e_len] = '\0';
    memcpy(out->id, idp, id_len);
    out->id[id_len] = '\0';
    return 0;
}

int px_key_set(px_key_t *out, const char *tenant, const char *entity, const char *id,
               char *errstr, size_t errstr_size) {
    const char *parts[3] = {tenant, entity, id};
    const char *names[3] = {"tenant", "entity", "id"};
    size_t lens[3];
    for (int i = 0; i < 3; i++) {
        lens[i] = parts[i] ? strnlen(parts[i], PX_KEY_PART_MAX + 1) : 0;
        if (!px_key_part_valid(parts[i], lens[i]))
            return px_errf(PX_EINVAL, errstr, errstr_size,
                           "key: %s must be 1-%d bytes of [A-Za-z0-9._-]", names[i], PX_KEY_PART_MAX);
    }
    memcpy(out->tenant, tenant, lens[0] + 1);
    memcpy(out->entity, entity, lens[1] + 1);
    memcpy(out->id, id, lens[2] + 1);
    return 0;
}

int px_key_format(const px_key_t *key, char *out, size_t out_size) {
    size_t a = strnlen(key->tenant, PX_KEY_PART_MAX + 1), b = strnlen(key->entity, PX_KEY_PART_MAX + 1),
           c = strnlen(key->id, PX_KEY_PART_MAX + 1);
    size_t n = a + b + c + 2;
    if (a > PX_KEY_PART_MAX || b > PX_KEY_PART_MAX || c > PX_KEY_PART_MAX || out_size < n + 1) return -1;
    memcpy(out, key->tenant, a);
    out[a] = ':';
    memcpy(out + a + 1, key->entity, b);
    out[a + 1 + b] = ':';
    memcpy(out + a + b + 2, key->id, c);
    out[n] = '\0';
    return (int)n;
}

bool px_key_equal(const px_key_t *a, const px_key_t *b) {
    return strcmp(a->tenant, b->tenant) == 0 && strcmp(a->entity, b->entity) == 0 &&
           strcmp(a->id, b->id) == 0;
}
